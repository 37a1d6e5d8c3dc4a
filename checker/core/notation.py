"""A one-line notation for small histories and final states, after Elle's and Jepsen's.

History: events separated by `|`, in time order.

    history := event ("|" event)*
    event   := write | read | bank | total
    write   := WRITER ":" SEQ [outcome] attr*
    outcome := "ok" | "fail" | "?"            -- "?" is INDETERMINATE; default ok
    read    := "r" WRITER "=" (SEQ | "-") attr*  -- the highest seq of WRITER seen; "-": none
    bank    := "b" NODE "=" TOTAL attr*       -- a bank total observed on NODE
    total   := "total=" N                     -- the bank workload's invariant total
    attr    := "@" SERVER                     -- server identity; its node is SERVER up to "/"
             | "#" ROW_ID                     -- a write's row id (ok writes: 1, 2, ... by default)
             | "t=" TIME | "t=" TIME "-" TIME -- completion time, or invocation and completion
             | "h=" LABEL                     -- payload label (hash: SHA-256 of it); "h=?" unknown
             | "err=" TEXT                    -- error text, no spaces
             | "via=" ENDPOINT                -- a read's endpoint (default mysql-read)

The n-th event (from 0) is invoked at time n and completes at n + 0.5 unless `t=` says
otherwise. A write's payload label defaults to `WRITER:SEQ`. `@mysql-0/2` is the second
incarnation of mysql-0: another server identity on the same node.

    "w1:1 ok @mysql-0 | w1:2 ? | w1:3 fail err=1290 | r w1=1 @mysql-1 t=9"

Final states: one per node, separated by `;`; a lone `:` starts the rows.

    state := NODE ROLE attr* [":" row*]       -- no ":" means the rows were not read
    ROLE  := "primary" | "replica"
    attr  := "gtid=" SET | "caught_up" | "behind" | "bank=" N | "error=" TEXT | "@" SERVER
    row   := WRITER ":" SEQ ["#" ID] ["!" | "~"]

A row takes the id its write was acknowledged with, or the next free id (`#` forces one),
and the payload its write sent. `!` flips a byte of the stored payload (it no longer matches
its stored checksum); `~` stores another payload with a matching checksum (it no longer
matches what was written).

    "mysql-0 primary gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:1-3 : w1:1 w1:2 w1:2 x:9"
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from checker.core.history import (
    Attempt,
    BankObservation,
    History,
    Key,
    NodeState,
    Outcome,
    Read,
    Role,
    Row,
)

__all__ = ["parse_history", "parse_states", "payload_hash", "scenario"]

_OUTCOMES = {"ok": Outcome.OK, "fail": Outcome.FAILED, "?": Outcome.INDETERMINATE}


def payload_hash(label: str) -> str:
    """The SHA-256 (hex) of a payload labelled `label` in the notation."""
    return hashlib.sha256(label.encode()).hexdigest()


def _split_key(token: str, where: str) -> Key:
    writer, sep, seq = token.rpartition(":")
    if not sep or not writer or not seq.lstrip("-").isdigit():
        raise ValueError(f"expected WRITER:SEQ in {where!r}, got {token!r}")
    return writer, int(seq)


@dataclass
class _Attrs:
    server: str | None = None
    row_id: int | None = None
    times: tuple[float, float] | None = None
    label: str | None = None
    label_unknown: bool = False
    error: str | None = None
    via: str | None = None
    rest: list[str] = field(default_factory=list)


def _attrs(words: Sequence[str]) -> _Attrs:
    out = _Attrs()
    for word in words:
        if word.startswith("@"):
            out.server = word[1:]
        elif word.startswith("#"):
            out.row_id = int(word[1:])
        elif word.startswith("t="):
            first, _, second = word[2:].partition("-")
            out.times = (
                (float(first) - 0.5, float(first)) if not second else (float(first), float(second))
            )
        elif word == "h=?":
            out.label_unknown = True
        elif word.startswith("h="):
            out.label = word[2:]
        elif word.startswith("err="):
            out.error = word[4:]
        elif word.startswith("via="):
            out.via = word[4:]
        else:
            out.rest.append(word)
    return out


def _node_of(server: str | None) -> str | None:
    return None if server is None else server.split("/", 1)[0]


def parse_history(text: str) -> History:
    """Parse the history notation (see the module docstring) into a History."""
    attempts: list[Attempt] = []
    reads: list[Read] = []
    bank: list[BankObservation] = []
    total: int | None = None
    next_row = 1
    for n, event in enumerate(e.strip() for e in text.split("|")):
        tokens = event.split()
        if not tokens:
            continue
        head = tokens[0]
        if head.startswith("total="):
            total = int(head[6:])
            continue
        if head in ("r", "b"):
            if len(tokens) < 2 or "=" not in tokens[1]:
                raise ValueError(f"expected {head} NAME=VALUE in {event!r}")
            name, _, value = tokens[1].partition("=")
            attrs = _attrs(tokens[2:])
            when = attrs.times[1] if attrs.times else float(n)
            if head == "r":
                reads.append(
                    Read(
                        when,
                        name,
                        None if value == "-" else int(value),
                        _node_of(attrs.server),
                        attrs.server,
                        attrs.via or "mysql-read",
                    )
                )
            else:
                bank.append(BankObservation(name, when, int(value), attrs.server))
            continue
        writer, seq = _split_key(head, event)
        outcome = Outcome.OK
        rest = tokens[1:]
        if rest and rest[0] in _OUTCOMES:
            outcome = _OUTCOMES[rest[0]]
            rest = rest[1:]
        attrs = _attrs(rest)
        if attrs.rest:
            raise ValueError(f"unknown attribute(s) {' '.join(attrs.rest)!r} in {event!r}")
        invoke, complete = attrs.times or (float(n), n + 0.5)
        row_id = attrs.row_id
        if row_id is None and outcome is Outcome.OK:
            row_id = next_row
        if row_id is not None:
            next_row = max(next_row, row_id + 1)
        digest = None if attrs.label_unknown else payload_hash(attrs.label or f"{writer}:{seq}")
        attempts.append(
            Attempt(
                writer_id=writer,
                seq=seq,
                payload_sha256=digest,
                outcome=outcome,
                invoke_wall=invoke,
                complete_wall=complete,
                invoke_mono=invoke,
                complete_mono=complete,
                server=attrs.server,
                node=_node_of(attrs.server),
                row_id=row_id,
                error=attrs.error,
            )
        )
    return History(attempts=attempts, reads=reads, bank=bank, bank_total=total)


def _state(text: str, written: dict[Key, Attempt], first_free: int) -> NodeState:
    head, colon, body = f" {text} ".partition(" : ")
    tokens = head.split()
    if len(tokens) < 2 or tokens[1] not in ("primary", "replica"):
        raise ValueError(f"expected NODE primary|replica in {text!r}")
    node, role = tokens[0], Role(tokens[1])
    gtid = error = server = None
    caught_up: bool | None = None
    bank_total: int | None = None
    for word in tokens[2:]:
        if word.startswith("gtid="):
            gtid = word[5:]
        elif word in ("caught_up", "behind"):
            caught_up = word == "caught_up"
        elif word.startswith("bank="):
            bank_total = int(word[5:])
        elif word.startswith("error="):
            error = word[6:]
        elif word.startswith("@"):
            server = word[1:]
        else:
            raise ValueError(f"unknown attribute {word!r} in {text!r}")
    rows: list[Row] | None = None
    if colon:
        rows = []
        used: set[int] = set()
        for token in body.split():
            mark = token[-1] if token[-1] in "!~" else ""
            key_text, _, forced = token.rstrip("!~").partition("#")
            key = _split_key(key_text, text)
            attempt = written.get(key)
            row_id = int(forced) if forced else None
            if row_id is None and attempt is not None and attempt.outcome is Outcome.OK:
                row_id = attempt.row_id if attempt.row_id not in used else None
            if row_id is None:
                row_id = max([first_free - 1, *used]) + 1
            used.add(row_id)
            sent = (attempt.payload_sha256 if attempt else None) or payload_hash(
                f"{key[0]}:{key[1]}"
            )
            if mark == "!":
                actual, stored = payload_hash(f"{key[0]}:{key[1]}!"), sent
            elif mark == "~":
                actual = stored = payload_hash(f"{key[0]}:{key[1]}~")
            else:
                actual = stored = sent
            rows.append(Row(row_id, key[0], key[1], actual, stored))
    return NodeState(
        node=node,
        role=role,
        rows=rows,
        gtid=gtid,
        caught_up=caught_up,
        bank_total=bank_total,
        server=server,
        error=error,
    )


def parse_states(text: str, history: History | None = None) -> list[NodeState]:
    """Parse final states (see the module docstring); rows take their ids from `history`."""
    written = {(a.writer_id, a.seq): a for a in (history.attempts if history else ())}
    known_ids = [a.row_id for a in written.values() if a.row_id is not None]
    first_free = max(known_ids, default=0) + 1
    return [_state(part.strip(), written, first_free) for part in text.split(";") if part.strip()]


def scenario(history: str, states: str) -> tuple[History, list[NodeState]]:
    """Both at once: `analyze(*scenario("w1:1 ok", "mysql-0 primary : w1:1"))`."""
    parsed = parse_history(history)
    return parsed, parse_states(states, parsed)
