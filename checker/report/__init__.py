"""`checker report`: one self-contained HTML page about a run, for people rather than logs.

The page (DIR/index.html, next to DIR/verdict.json) shows the verdict and its anomalies with
their evidence, Jepsen-style timelines (writes per second by outcome, latency quantiles,
replica lag) with chaos activities shaded, the nodes, and the verdict JSON to download. It
loads nothing from anywhere: styles and plots are inline and a Content-Security-Policy
forbids any fetch. docs/report.md explains how to read it.

Which verdict: `--verdict FILE` if given; else the journal's last full verification; else an
analysis of the journal alone, which can only run the history-based detectors (split brain,
stale and non-monotonic reads, bank totals seen during the run): the page then says that
the checks of the data against the servers were not run, and the verdict cannot be valid.

Modules: `write` (which verdict, the page written atomically), `data` (the journal's facts and
timelines, through `checker.journal.JournalReader`), `chaos` (a Chaos Toolkit journal's
activities), `svg` (the plots), `html` (the page around them, `templates/report.html`).
"""

from checker.report.write import ANALYSIS_LIMIT, write_report

__all__ = ["ANALYSIS_LIMIT", "write_report"]
