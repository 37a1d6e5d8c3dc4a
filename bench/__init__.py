"""Benchmarks: `python -m bench NAME [options]`; figures are reported in docs/benchmarks.md."""
