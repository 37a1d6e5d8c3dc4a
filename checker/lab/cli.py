"""`checker lab ...` commands (filled in by the lab module)."""

from __future__ import annotations

import click


@click.group()
def lab() -> None:
    """Start, inspect, break and stop the local MySQL lab."""
