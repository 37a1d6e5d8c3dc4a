"""The lab a benchmark measures: an existing one (`--lab DIR`, left running) or a temporary
one, brought down and removed afterwards whatever happens."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from checker.lab.topology import Lab


@contextlib.contextmanager
def bench_lab(existing: str | None, prefix: str) -> Iterator[Lab]:
    if existing:
        yield Lab(existing)
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        lab = Lab(Path(tmp) / "lab")
        try:
            yield lab
        finally:
            lab.down(purge=True)
