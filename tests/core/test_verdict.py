"""The Verdict: validity rules, caps, merging, and its JSON contract."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checker.core.verdict import (
    ANOMALY_TYPES,
    VERSION,
    Anomaly,
    Counts,
    Failure,
    NodeVerdict,
    Recovery,
    Validity,
    Verdict,
    build_verdict,
    merge,
)


def _lost(seq: int, node: str = "mysql-0") -> Anomaly:
    return Anomaly("lost", node, "w", seq, {"row_id": seq})


def test_no_anomaly_no_failure_all_nodes_valid_is_valid() -> None:
    """Nothing found, nothing failed, every node judged: valid."""
    v = build_verdict([], counts=Counts(3, 3), nodes={"mysql-0": NodeVerdict(Validity.VALID)})
    assert v.valid is Validity.VALID and v.to_dict()["valid"] is True


def test_anomaly_makes_its_node_and_the_verdict_invalid() -> None:
    """Any anomaly is proof: the verdict and the node it names are invalid."""
    v = build_verdict(
        [_lost(1)],
        nodes={"mysql-0": NodeVerdict(Validity.VALID), "mysql-1": NodeVerdict(Validity.VALID)},
    )
    assert v.valid is Validity.INVALID
    assert v.nodes["mysql-0"].valid is Validity.INVALID
    assert v.nodes["mysql-1"].valid is Validity.VALID


def test_failure_or_unknown_node_makes_the_verdict_unknown() -> None:
    """A failed detector or an unjudged node is never hidden as valid."""
    failed = build_verdict([], failures=[Failure("lost", "boom")])
    unjudged = build_verdict(
        [], nodes={"mysql-2": NodeVerdict(Validity.UNKNOWN, reason="unreachable")}
    )
    assert failed.valid is Validity.UNKNOWN and failed.to_dict()["valid"] == "unknown"
    assert unjudged.valid is Validity.UNKNOWN
    assert build_verdict([_lost(1)], failures=[Failure("x", "y")]).valid is Validity.INVALID


def test_json_has_the_documented_shape_and_key_order() -> None:
    """Keys come in the documented order, and every anomaly type is counted, even at zero."""
    d = build_verdict([_lost(1)], counts=Counts(5, 4, 1)).to_dict()
    assert list(d) == [
        "version",
        "valid",
        "counts",
        "anomaly_counts",
        "anomalies",
        "nodes",
        "recovered",
        "failures",
        "cap",
        "groups",
    ]
    assert d["version"] == VERSION
    assert list(d["counts"]) == ["attempted", "ok", "failed", "indeterminate", "recovered"]
    assert list(d["anomaly_counts"]) == list(ANOMALY_TYPES)
    assert d["anomaly_counts"]["lost"] == 1 and sum(d["anomaly_counts"].values()) == 1
    assert list(d["anomalies"][0]) == ["type", "node", "writer_id", "seq", "evidence"]
    assert d["nodes"]["mysql-0"] == {
        "valid": False,
        "role": None,
        "gtid": None,
        "rows": None,
        "reason": None,
    }


def test_examples_are_capped_per_type_and_counts_stay_exact() -> None:
    """A flood of one anomaly keeps `cap` examples of it, the lowest first, and the exact count."""
    flood = [_lost(s) for s in range(1000)]
    random.Random(1).shuffle(flood)
    v = build_verdict([*flood, Anomaly("errant", "mysql-1", evidence={"errant": "x"})], cap=10)
    assert v.anomaly_counts["lost"] == 1000 and v.anomaly_counts["errant"] == 1
    assert [a.seq for a in v.anomalies if a.type == "lost"] == list(range(10))
    assert len(v.anomalies) == 11
    assert len(v.to_json()) < 3000


def test_cap_keeps_the_same_examples_whatever_the_order() -> None:
    """Examples tied on node, writer and seq are still chosen deterministically."""
    tied = [Anomaly("stale", "mysql-1", "w", 3, {"read_at": float(t)}) for t in range(50)]
    first = build_verdict(tied, cap=5)
    random.Random(3).shuffle(tied)
    assert build_verdict(tied, cap=5) == first


def test_duplicates_reported_twice_fold_into_one() -> None:
    """The same duplicate from a chunk and from GROUP BY is one anomaly with all ids."""
    v = build_verdict(
        [
            Anomaly("duplicated", "mysql-0", "w", 1, {"ids": [3, 9], "copies": 2}),
            Anomaly("duplicated", "mysql-0", "w", 1, {"ids": [3, 9, 12], "copies": 3}),
        ]
    )
    assert v.anomaly_counts["duplicated"] == 1
    assert v.anomalies[0].evidence == {"ids": [3, 9, 12], "copies": 3}


def test_recovered_writes_are_counted_once_and_listed() -> None:
    """Recovered writes are counted by distinct write and listed apart from anomalies."""
    v = build_verdict(
        [],
        counts=Counts(4, 2, 0, 2),
        recovered=[Recovery("mysql-0", "w", 2, 7), Recovery("mysql-0", "w", 2, 5)],
    )
    assert v.counts.recovered == 1 and v.valid is Validity.VALID
    assert v.recovered == (Recovery("mysql-0", "w", 2, 5),)
    assert v.to_dict()["recovered"] == [
        {"node": "mysql-0", "writer_id": "w", "seq": 2, "row_id": 5}
    ]


def test_merge_adds_counts_and_keeps_the_worst_validity() -> None:
    """Merged parts add their counts; a node is as bad as its worst part."""
    a = build_verdict(
        [_lost(1)], counts=Counts(10, 9, 1), nodes={"mysql-0": NodeVerdict(Validity.VALID, rows=5)}
    )
    b = build_verdict(
        [_lost(2)],
        counts=Counts(4, 4),
        nodes={
            "mysql-0": NodeVerdict(Validity.VALID, rows=7),
            "mysql-1": NodeVerdict(Validity.UNKNOWN, reason="r"),
        },
        failures=[Failure("stale", "boom")],
    )
    m = merge([a, b])
    assert m.counts == Counts(14, 13, 1)
    assert m.anomaly_counts["lost"] == 2
    assert m.nodes["mysql-0"].valid is Validity.INVALID and m.nodes["mysql-0"].rows == 12
    assert m.nodes["mysql-1"].valid is Validity.UNKNOWN
    assert m.valid is Validity.INVALID and m.failures == (Failure("stale", "boom"),)
    assert merge([]).valid is Validity.VALID


def test_from_dict_ignores_keys_of_later_versions() -> None:
    """A reader of version 1 accepts documents with added keys."""
    d = build_verdict([_lost(1)]).to_dict()
    d["something_new"] = {"x": 1}
    d["anomalies"][0]["extra"] = True
    assert Verdict.from_dict(d) == build_verdict([_lost(1)])


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_validity_rejects_lookalikes(value: object) -> None:
    """Only true, false and "unknown" are validities; 1 and 0 are not mistaken for them."""
    with pytest.raises(ValueError):
        Validity.from_json(value)


def test_unknown_anomaly_type_is_refused() -> None:
    """An anomaly type outside the documented list cannot be created."""
    with pytest.raises(ValueError):
        Anomaly("weird")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_anomalies = st.builds(
    Anomaly,
    st.sampled_from(ANOMALY_TYPES),
    st.none() | st.sampled_from(["mysql-0", "mysql-1"]),
    st.none() | st.sampled_from(["w1", "w2"]),
    st.none() | st.integers(0, 50),
    st.dictionaries(st.text(max_size=4), _json, max_size=3),
)
_nodes = st.dictionaries(
    st.sampled_from(["mysql-0", "mysql-1", "mysql-2"]),
    st.builds(
        NodeVerdict,
        st.sampled_from(Validity),
        st.none() | st.sampled_from(["primary", "replica"]),
        st.none() | st.text(max_size=8),
        st.none() | st.integers(0, 10**6),
        st.none() | st.text(max_size=8),
    ),
)


@given(
    st.lists(_anomalies, max_size=12),
    _nodes,
    st.lists(st.builds(Failure, st.text(max_size=5), st.text(max_size=5)), max_size=2),
    st.integers(1, 5),
)
def test_json_round_trip(
    anomalies: list[Anomaly], nodes: dict[str, NodeVerdict], failures: list[Failure], cap: int
) -> None:
    """to_json then from_json gives back an equal Verdict, and the JSON is deterministic."""
    v = build_verdict(anomalies, counts=Counts(9, 5, 2, 2), nodes=nodes, failures=failures, cap=cap)
    text = v.to_json()
    assert Verdict.from_json(text) == v
    assert Verdict.from_json(text).to_json() == text
    expected = {t: sum(a.type == t for a in anomalies) for t in ANOMALY_TYPES}
    expected["duplicated"] = len(
        {(a.node, a.writer_id, a.seq) for a in anomalies if a.type == "duplicated"}
    )
    assert json.loads(text)["anomaly_counts"] == expected
