"""Properties over simulated runs: a correct store is valid, one fault gives exactly its anomaly."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from checker.core.analysis import analyze
from checker.core.history import Outcome, Read
from checker.core.verdict import Validity
from tests.core.sim import FAULTS, Run, runs

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(runs())
def test_a_correct_store_is_valid(run: Run) -> None:
    """Whatever the writes, outcomes, failover, replicas, reads and bank: correct means VALID."""
    verdict = analyze(run.history, run.states)
    assert verdict.valid is Validity.VALID, verdict.to_json(indent=2)
    ok = sum(a.outcome is Outcome.OK for a in run.history.attempts)
    assert (verdict.counts.attempted, verdict.counts.ok) == (len(run.history.attempts), ok)


@pytest.mark.parametrize("kind", sorted(FAULTS))
@SETTINGS
@given(data=st.data())
def test_one_fault_gives_exactly_its_anomaly(kind: str, data: st.DataObject) -> None:
    """Injecting one fault yields exactly one kind of anomaly, on the right node, writer and seq."""
    fault, applicable = FAULTS[kind]
    run = data.draw(runs())
    assume(applicable(run))
    faulty, expected = data.draw(fault(run))
    verdict = analyze(faulty.history, faulty.states)
    assert verdict.valid is Validity.INVALID
    assert {t: n for t, n in verdict.anomaly_counts.items() if n} == {kind: 1}, verdict.to_json(
        indent=2
    )
    (anomaly,) = verdict.anomalies
    assert (anomaly.type, anomaly.node, anomaly.writer_id, anomaly.seq) == (
        expected.type,
        expected.node,
        expected.writer_id,
        expected.seq,
    )
    assert verdict.failures == ()


@st.composite
def _indeterminate_gone_or_not(draw: st.DrawFn) -> Run:
    """A correct run where any subset of the indeterminate writes' rows is removed everywhere."""
    run = draw(runs(with_reads=False))
    doubtful = {a.key for a in run.history.attempts if a.outcome is Outcome.INDETERMINATE}
    rows = list(run.state(run.primary).rows or ())
    present = [r for r in rows if (r.writer_id, r.seq) in doubtful]
    gone = set(draw(st.lists(st.sampled_from(present), unique=True))) if present else set()
    return run.with_rows_everywhere([r for r in rows if r not in gone])


@SETTINGS
@given(_indeterminate_gone_or_not())
def test_indeterminate_writes_are_never_lost(run: Run) -> None:
    """Present or absent, an indeterminate write is never lost; present ones are recovered."""
    verdict = analyze(run.history, run.states)
    assert verdict.anomaly_counts["lost"] == 0
    assert verdict.valid is Validity.VALID
    doubtful = {a.key for a in run.history.attempts if a.outcome is Outcome.INDETERMINATE}
    rows = run.state(run.primary).rows or ()
    assert verdict.counts.recovered == len({(r.writer_id, r.seq) for r in rows} & doubtful)


@st.composite
def _noisy_reads(draw: st.DrawFn) -> Run:
    """A run whose reads claim arbitrary views, so stale and non-monotonic findings abound."""
    run = draw(runs(with_reads=False))
    writers = sorted({a.writer_id for a in run.history.attempts}) or ["w0"]
    nodes = [s.node for s in run.states]
    reads = draw(
        st.lists(
            st.builds(
                Read,
                st.integers(95, 150).map(float),
                st.sampled_from(writers),
                st.none() | st.integers(0, 12),
                st.sampled_from(nodes),
            ),
            max_size=15,
        )
    )
    return replace(run, history=replace(run.history, reads=reads))


@SETTINGS
@given(_noisy_reads(), st.randoms(use_true_random=False))
def test_order_of_reads_attempts_and_replica_rows_does_not_change_the_verdict(
    run: Run, rnd: random.Random
) -> None:
    """Shuffling reads, attempts and each replica's rows gives the very same verdict JSON."""
    before = analyze(run.history, run.states).to_json()
    reads = list(run.history.reads)
    attempts = list(run.history.attempts)
    rnd.shuffle(reads)
    rnd.shuffle(attempts)
    shuffled = replace(run, history=replace(run.history, reads=reads, attempts=attempts))
    for node in shuffled.replicas:
        rows = list(shuffled.state(node).rows or ())
        rnd.shuffle(rows)
        shuffled = shuffled.with_state(node, rows=rows)
    assert analyze(shuffled.history, shuffled.states).to_json() == before
