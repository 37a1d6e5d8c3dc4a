"""Replay the regression corpus of recorded histories in tests/data/histories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checker.core.analysis import analyze
from checker.core.history import history_from_dict, history_to_dict, state_from_dict, state_to_dict
from checker.core.verdict import Validity, Verdict

CORPUS = Path(__file__).parent.parent / "data" / "histories"
FILES = sorted(CORPUS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_the_corpus_is_there() -> None:
    """The corpus holds several histories, valid, invalid and unknown ones among them."""
    verdicts = {json.dumps(_load(p)["expected"]["valid"]) for p in FILES}
    assert len(FILES) >= 3 and verdicts == {"true", "false", '"unknown"'}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_recorded_history_gives_its_recorded_verdict(path: Path) -> None:
    """Each recorded history, analysed again, gives exactly the findings recorded with it."""
    doc = _load(path)
    history = history_from_dict(doc["history"])
    states = [state_from_dict(s) for s in doc["final_states"]]
    verdict = analyze(history, states, flavor=doc["flavor"], lag_bound=doc["lag_bound"])
    expected = doc["expected"]

    assert verdict.valid is Validity.from_json(expected["valid"]), verdict.to_json(indent=2)
    assert {t: n for t, n in verdict.anomaly_counts.items() if n} == expected["anomaly_counts"]
    found = sorted(([a.type, a.node, a.writer_id, a.seq] for a in verdict.anomalies), key=str)
    assert found == expected["anomalies"]
    assert verdict.counts.recovered == expected["recovered"]
    assert (
        sorted(n for n, v in verdict.nodes.items() if v.valid is Validity.UNKNOWN)
        == expected["unknown_nodes"]
    )
    assert Verdict.from_json(verdict.to_json()) == verdict


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_files_round_trip_through_the_codecs(path: Path) -> None:
    """Reading a corpus file and writing it back gives the same history and states."""
    doc = _load(path)
    assert history_to_dict(history_from_dict(doc["history"])) == doc["history"]
    assert [state_to_dict(state_from_dict(s)) for s in doc["final_states"]] == doc["final_states"]
