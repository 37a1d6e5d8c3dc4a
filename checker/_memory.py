"""The process's memory: glibc's malloc arenas and trimming, for a service that runs for weeks."""

from __future__ import annotations

import ctypes
import gc
import os
from typing import Any

_M_ARENA_MAX = -8  # from glibc's <malloc.h>


def _glibc() -> Any:
    """glibc, for `mallopt` and `malloc_trim`; None elsewhere (musl, macOS)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist on glibc only
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for this process (unless `MALLOC_ARENA_MAX` is set).

    The checker runs ~20 threads; by default glibc gives busy threads arenas of their own (up to
    8 per core) and keeps what each freed, so RSS crept up by ~0.7 MiB per verification in a
    long run. With two arenas it stays flat (`python -m bench soak`, docs/benchmarks.md).
    Call it before the threads start; a no-op off glibc.
    """
    libc = _glibc()
    if libc is not None and not os.environ.get("MALLOC_ARENA_MAX"):
        libc.mallopt(_M_ARENA_MAX, arenas)


def release_memory() -> None:
    """Hand the memory a verification used back to the OS.

    A verification allocates and frees tens of MB in short-lived objects; glibc keeps freed
    pages mapped, so a long run's RSS would creep up one verification at a time (measured by
    `python -m bench soak`). `malloc_trim` returns them; a no-op off glibc.
    """
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
