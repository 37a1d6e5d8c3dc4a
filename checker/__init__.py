"""MySQL/MariaDB data-integrity checker for chaos runs.

`checker.core` is pure (records, detectors, verdict); everything else adapts it to
MySQL, the journal, HTTP, the local lab and the command line.
"""

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> dict[str, object]:
    """Chaos Toolkit discovery for this distribution.

    `chaos discover mysql-chaos-checker` maps the distribution to its first top-level package,
    `checker`; the activities live in `probes`, resolved by name at call time so that
    `checker` itself never imports `probes`.
    """
    import importlib

    probes = importlib.import_module("probes")
    result: dict[str, object] = probes.discover(discover_system=discover_system)
    return result
