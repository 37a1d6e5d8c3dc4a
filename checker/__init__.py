"""MySQL/MariaDB data-integrity checker for chaos runs.

`checker.core` is pure (records, detectors, verdict); everything else adapts it to
MySQL, the journal, HTTP, the local lab and the command line.
"""

__version__ = "0.1.0"
