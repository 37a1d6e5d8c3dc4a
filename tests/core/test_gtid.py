"""GTID sets of MySQL and MariaDB: parsing, containment, errant differences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checker.core.gtid import (
    errant_gtids,
    format_mariadb,
    format_mysql,
    gtid_contains,
    parse_mariadb,
    parse_mysql,
)

A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
B = "4f22ab58-82db-22f2-8f44-d91bb0530673"


def test_mysql_sets_are_normalised() -> None:
    """Intervals are merged and sorted, uuids lower-cased, whitespace ignored."""
    parsed = parse_mysql(f"{B}:3-4,\n{A.upper()}:7-9:1-5:6, {B}:1")
    assert parsed == {A: [(1, 9)], B: [(1, 1), (3, 4)]}
    assert format_mysql(parsed) == f"{A}:1-9,{B}:1:3-4"
    assert parse_mysql("") == {}


def test_mysql_tagged_gtids_are_kept_apart() -> None:
    """MySQL 8.3 tags make their own series within one source uuid."""
    parsed = parse_mysql(f"{A}:1-3:audit:1-2")
    assert parsed == {A: [(1, 3)], f"{A}:audit": [(1, 2)]}
    assert errant_gtids(f"{A}:1-3", f"{A}:1-3:audit:1-2", "mysql") == f"{A}:audit:1-2"


@pytest.mark.parametrize("text", ["nonsense:1", f"{A}", f"{A}:0", f"{A}:5-3", f"{A}:1-x"])
def test_malformed_mysql_sets_raise(text: str) -> None:
    """A set that cannot be read raises ValueError instead of comparing as empty."""
    with pytest.raises(ValueError):
        parse_mysql(text)


def test_mysql_containment_and_errant() -> None:
    """The barrier needs every primary GTID on the replica; errant is the replica's surplus."""
    primary = f"{A}:1-100,{B}:1-20"
    assert gtid_contains(primary, f"{A}:1-100,{B}:1-25", "mysql")
    assert not gtid_contains(primary, f"{A}:1-99,{B}:1-25", "mysql")
    assert errant_gtids(primary, f"{A}:1-100,{B}:1-25", "mysql") == f"{B}:21-25"
    assert errant_gtids(primary, f"{A}:1-50", "mysql") == ""


def test_mariadb_lists_parse_and_format() -> None:
    """MariaDB domain-server-seq entries parse per (domain, server id)."""
    parsed = parse_mariadb("0-2-150, 0-1-100,1-1-7")
    assert parsed == {(0, 1): 100, (0, 2): 150, (1, 1): 7}
    assert format_mariadb(parsed) == "0-1-100,0-2-150,1-1-7"
    with pytest.raises(ValueError):
        parse_mariadb("0-1")


def test_mariadb_containment_compares_each_domain() -> None:
    """A replica has caught up when its highest seq per domain reaches the primary's."""
    assert gtid_contains("0-1-100,0-2-150", "0-2-150", "mariadb")
    assert gtid_contains("0-2-150,1-1-7", "0-2-151,1-1-7", "mariadb")
    assert not gtid_contains("0-2-150,1-1-7", "0-2-150", "mariadb")
    assert not gtid_contains("0-2-150", "0-1-149", "mariadb")


def test_mariadb_errant_is_a_foreign_server_or_a_higher_seq() -> None:
    """An entry absent on the primary, or ahead of the primary's, is errant."""
    assert errant_gtids("0-1-100,0-2-150", "0-1-100,0-2-150", "mariadb") == ""
    assert errant_gtids("0-1-100,0-2-150", "0-1-90,0-2-150", "mariadb") == ""
    assert errant_gtids("0-1-100,0-2-150", "0-1-100,0-3-120", "mariadb") == "0-3-120"
    assert errant_gtids("0-1-100", "0-1-101,1-3-4", "mariadb") == "0-1-101,1-3-4"


_series = st.dictionaries(
    st.sampled_from([A, B]), st.sets(st.integers(1, 40), min_size=1), max_size=2
)


def _text(series: dict[str, set[int]]) -> str:
    return ",".join(f"{uuid}:" + ":".join(map(str, sorted(nums))) for uuid, nums in series.items())


def _explicit(series: dict[str, set[int]]) -> set[tuple[str, int]]:
    return {(uuid, n) for uuid, nums in series.items() for n in nums}


@given(_series, _series)
def test_mysql_set_algebra_matches_explicit_sets(
    a: dict[str, set[int]], b: dict[str, set[int]]
) -> None:
    """Interval difference and containment agree with sets of individual GTIDs."""
    difference = parse_mysql(errant_gtids(_text(b), _text(a), "mysql"))
    assert _explicit(
        {k: {n for lo, hi in v for n in range(lo, hi + 1)} for k, v in difference.items()}
    ) == (_explicit(a) - _explicit(b))
    assert gtid_contains(_text(a), _text(b), "mysql") == (_explicit(a) <= _explicit(b))
