"""The one-line notation for histories and final states."""

from __future__ import annotations

import pytest

from checker.core.history import Outcome, Role
from checker.core.notation import parse_history, parse_states, payload_hash, scenario


def test_writes_carry_outcome_server_node_and_default_times() -> None:
    """Each write takes its outcome, its server identity and node, and times from its position."""
    h = parse_history("w1:1 ok @mysql-0 | w1:2 ? | w1:3 fail err=1290 | w2:1 @mysql-0/2")
    a = h.attempts
    assert [x.outcome for x in a] == [
        Outcome.OK,
        Outcome.INDETERMINATE,
        Outcome.FAILED,
        Outcome.OK,
    ]
    assert (a[0].server, a[0].node) == ("mysql-0", "mysql-0")
    assert (a[3].server, a[3].node) == ("mysql-0/2", "mysql-0")
    assert a[1].server is None and a[1].node is None
    assert a[2].error == "1290"
    assert [(x.invoke_wall, x.complete_wall) for x in a] == [(0, 0.5), (1, 1.5), (2, 2.5), (3, 3.5)]


def test_ok_writes_get_increasing_row_ids_unless_told() -> None:
    """Acknowledged writes get row ids 1, 2, ... and `#` sets one explicitly."""
    h = parse_history("a:1 | a:2 ? | a:3 #10 | a:4")
    assert [x.row_id for x in h.attempts] == [1, None, 10, 11]


def test_times_and_payload_labels() -> None:
    """`t=` sets completion (or both times) and `h=` the payload label, `h=?` an unknown payload."""
    h = parse_history("a:1 t=7 h=hello | a:2 ? t=8-9.25 h=?")
    first, second = h.attempts
    assert (first.invoke_wall, first.complete_wall) == (6.5, 7.0)
    assert first.payload_sha256 == payload_hash("hello")
    assert (second.invoke_wall, second.complete_wall) == (8.0, 9.25)
    assert second.payload_sha256 is None


def test_reads_bank_observations_and_total() -> None:
    """Reads, bank observations and the bank invariant each have their own event."""
    h = parse_history("total=300 | r w1=4 @mysql-1 t=12 | r w2=- via=mysql-0 | b mysql-2=290 t=5")
    assert h.bank_total == 300
    first, second = h.reads
    assert (first.time, first.writer_id, first.max_seq, first.node) == (12.0, "w1", 4, "mysql-1")
    assert first.endpoint == "mysql-read"
    assert (second.max_seq, second.endpoint, second.node) == (None, "mysql-0", None)
    (obs,) = h.bank
    assert (obs.node, obs.time, obs.total) == ("mysql-2", 5.0, 290)


def test_states_take_row_ids_and_payloads_from_the_history() -> None:
    """A row takes its write's row id and payload; repeats and strangers get fresh ids."""
    _, (primary,) = scenario(
        "a:1 h=x | a:2 ? | a:3", "mysql-0 primary gtid=g : a:1 a:2 a:1 z:5 a:3"
    )
    assert primary.role is Role.PRIMARY and primary.gtid == "g"
    assert primary.rows is not None
    assert [(r.id, r.writer_id, r.seq) for r in primary.rows] == [
        (1, "a", 1),
        (3, "a", 2),
        (4, "a", 1),
        (5, "z", 5),
        (2, "a", 3),
    ]
    assert primary.rows[0].payload_sha256 == primary.rows[0].checksum == payload_hash("x")


def test_row_marks_corrupt_the_payload_two_ways() -> None:
    """`!` breaks the stored checksum and `~` changes the payload with a matching checksum."""
    h, (state,) = scenario("a:1 | a:2", "mysql-0 primary : a:1! a:2~")
    assert state.rows is not None
    flipped, changed = state.rows
    assert flipped.payload_sha256 != flipped.checksum == h.attempts[0].payload_sha256
    assert changed.payload_sha256 == changed.checksum != h.attempts[1].payload_sha256


def test_state_attributes_and_unread_rows() -> None:
    """A state without `:` has no rows; attributes set catch-up, bank total, error and server."""
    states = parse_states(
        "mysql-1 replica behind bank=90 @mysql-1/3 ; mysql-2 replica error=timeout ; "
        "mysql-3 replica caught_up :"
    )
    behind, broken, empty = states
    assert behind.rows is None and behind.caught_up is False and behind.bank_total == 90
    assert behind.server == "mysql-1/3"
    assert broken.error == "timeout" and broken.rows is None
    assert empty.caught_up is True and empty.rows == []


@pytest.mark.parametrize(
    ("text", "states"),
    [
        ("w1 ok", ""),
        ("w1:x", ""),
        ("w1:1 bogus", ""),
        ("r w1", ""),
        ("", "mysql-0 leader :"),
        ("", "mysql-0 primary colour=blue"),
        ("", "mysql-0 primary : a1"),
    ],
)
def test_malformed_notation_is_refused(text: str, states: str) -> None:
    """Malformed events or states raise ValueError rather than being guessed at."""
    with pytest.raises(ValueError):
        scenario(text, states)
