"""GTID sets of both flavors: parsing, containment and the errant difference.

MySQL (`@@gtid_executed`): `uuid:1-5:7-9,uuid2:1-3`, intervals per source uuid; 8.3+ tags
(`uuid:tag:1-5`) are kept apart per tag. Whitespace and newlines are ignored.

MariaDB (`@@gtid_binlog_state`): `domain-server-seq` entries, one per (domain, server id), each
the last sequence number logged from that server in that domain. `@@gtid_current_pos` has the
same syntax with one entry per domain.

Parsers raise ValueError on malformed text: a set that cannot be read cannot be compared, and
the analysis reports that detector as failed (unknown), never as passed.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "Flavor",
    "MariadbState",
    "MysqlSet",
    "errant_gtids",
    "format_mariadb",
    "format_mysql",
    "gtid_contains",
    "parse_mariadb",
    "parse_mysql",
]

Flavor = Literal["mysql", "mariadb"]

MysqlSet = dict[str, list[tuple[int, int]]]
"""Source uuid (lower case, `uuid:tag` for tagged GTIDs) -> sorted disjoint inclusive intervals."""
MariadbState = dict[tuple[int, int], int]
"""(domain id, server id) -> highest sequence number."""

_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_TAG = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")
_INTERVAL = re.compile(r"^(\d+)(?:-(\d+))?$")
_MARIADB = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def _normalise(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def parse_mysql(text: str) -> MysqlSet:
    """Parse a MySQL GTID set; the empty string is the empty set."""
    out: dict[str, list[tuple[int, int]]] = {}
    body = "".join(text.split())
    for part in filter(None, body.split(",")):
        fields = part.lower().split(":")
        source = fields[0]
        if not _UUID.match(source):
            raise ValueError(f"malformed GTID set {text!r}: {source!r} is not a server uuid")
        key = source
        seen_interval = False
        for item in fields[1:]:
            interval = _INTERVAL.match(item)
            if interval:
                lo = int(interval.group(1))
                hi = int(interval.group(2) or lo)
                if lo < 1 or hi < lo:
                    raise ValueError(f"malformed GTID set {text!r}: bad interval {item!r}")
                out.setdefault(key, []).append((lo, hi))
                seen_interval = True
            elif _TAG.match(item):
                key = f"{source}:{item}"
            else:
                raise ValueError(f"malformed GTID set {text!r}: bad element {item!r}")
        if not seen_interval:
            raise ValueError(f"malformed GTID set {text!r}: {part!r} has no interval")
    return {key: _normalise(ivs) for key, ivs in out.items()}


def format_mysql(gtids: MysqlSet) -> str:
    """MySQL's own syntax, sources sorted; the empty set is the empty string."""
    parts = []
    for key in sorted(gtids):
        if gtids[key]:
            spans = ":".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in gtids[key])
            parts.append(f"{key}:{spans}")
    return ",".join(parts)


def _subtract_intervals(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    j = 0
    for lo, hi in a:
        cur = lo
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= hi and cur <= hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def _mysql_difference(a: MysqlSet, b: MysqlSet) -> MysqlSet:
    diff = {key: _subtract_intervals(ivs, b.get(key, [])) for key, ivs in a.items()}
    return {key: ivs for key, ivs in diff.items() if ivs}


def parse_mariadb(text: str) -> MariadbState:
    """Parse a MariaDB GTID list; a repeated (domain, server) keeps its highest sequence."""
    out: MariadbState = {}
    for part in filter(None, "".join(text.split()).split(",")):
        m = _MARIADB.match(part)
        if not m:
            raise ValueError(
                f"malformed MariaDB GTID list {text!r}: {part!r} is not domain-server-seq"
            )
        pair = (int(m.group(1)), int(m.group(2)))
        out[pair] = max(out.get(pair, 0), int(m.group(3)))
    return out


def format_mariadb(state: MariadbState) -> str:
    """MariaDB's own syntax, sorted by domain then server id."""
    return ",".join(f"{d}-{s}-{n}" for (d, s), n in sorted(state.items()))


def _domain_max(state: MariadbState) -> dict[int, int]:
    out: dict[int, int] = {}
    for (domain, _), seq in state.items():
        out[domain] = max(out.get(domain, 0), seq)
    return out


def gtid_contains(primary: str, replica: str, flavor: Flavor) -> bool:
    """Whether the replica has executed everything in the primary's set (the barrier).

    MariaDB compares the highest sequence number per domain: with `gtid_strict_mode` (which the
    lab and the manifests set) sequence numbers only grow within a domain, so this holds for
    `@@gtid_binlog_state` and `@@gtid_current_pos` alike.
    """
    if flavor == "mysql":
        return not _mysql_difference(parse_mysql(primary), parse_mysql(replica))
    theirs = _domain_max(parse_mariadb(replica))
    return all(theirs.get(d, 0) >= n for d, n in _domain_max(parse_mariadb(primary)).items())


def errant_gtids(primary: str, replica: str, flavor: Flavor) -> str:
    """GTIDs the replica holds and the primary never had, in the flavor's syntax ("" if none).

    MariaDB: an entry is errant when its (domain, server id) is absent on the primary or has a
    higher sequence number there. This needs the full `@@gtid_binlog_state` on both sides; a
    one-entry-per-domain position would make a replica that is merely behind look errant.
    """
    if flavor == "mysql":
        return format_mysql(_mysql_difference(parse_mysql(replica), parse_mysql(primary)))
    ours = parse_mariadb(primary)
    theirs = parse_mariadb(replica)
    return format_mariadb(
        {pair: seq for pair, seq in theirs.items() if pair not in ours or seq > ours[pair]}
    )
