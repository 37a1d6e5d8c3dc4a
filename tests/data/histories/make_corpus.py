"""Regenerate the corpus: `.venv/bin/python tests/data/histories/make_corpus.py`.

Seeded reconstructions of lab incidents. The expected findings are derived from how each
incident is built (which acks were never replicated, which reads could not see them...),
independently of checker.core's detectors; tests/core/test_corpus.py checks that they agree.
"""

import hashlib
import json
import random
from dataclasses import replace
from pathlib import Path

from checker.core.history import (
    Attempt,
    BankObservation,
    History,
    NodeState,
    Outcome,
    Read,
    Role,
    Row,
    history_to_dict,
    state_to_dict,
)

OUT = Path(__file__).parent
T0 = 1732650000.0
LOST_CONN = "commit: (2013, 'Lost connection to MySQL server during query')"
READ_ONLY = (
    "insert: (1290, 'The MySQL server is running with the --read-only option so it cannot "
    "execute this statement')"
)
GONE = "insert: (2006, 'MySQL server has gone away')"


def digest(rng):
    return hashlib.sha256(rng.randbytes(rng.randint(16, 128))).hexdigest()


class Writer:
    def __init__(self, wid, t, rng):
        self.wid, self.t, self.seq, self.rng = wid, t, 0, rng

    def step(self, rate):
        self.t += self.rng.uniform(0.6, 1.4) / rate


def attempt(w, outcome, server, node, row_id, error, latency, payload=True):
    w.seq += 1
    inv = round(w.t, 6)
    done = round(w.t + latency, 6)
    return Attempt(
        w.wid,
        w.seq,
        digest(w.rng) if payload else None,
        outcome,
        inv,
        done,
        round(inv - T0 + 5000.0, 6),
        round(done - T0 + 5000.0, 6),
        server,
        node,
        row_id,
        error,
    )


def brute_stale(attempts, reads, lag=5.0):
    out = []
    for r in reads:
        m = -1 if r.max_seq is None else r.max_seq
        missed = [
            a
            for a in attempts
            if a.outcome is Outcome.OK
            and a.writer_id == r.writer_id
            and a.seq > m
            and a.complete_wall < r.time - lag
        ]
        if missed:
            out.append(["stale", r.node, r.writer_id, min(a.seq for a in missed)])
    return out


def dump(name, description, flavor, history, states, expected):
    doc = {
        "name": name,
        "description": description,
        "flavor": flavor,
        "lag_bound": 5.0,
        "expected": expected,
        "history": history_to_dict(history),
        "final_states": [state_to_dict(s) for s in states],
    }
    # One record per line keeps the files reviewable and their diffs small.
    lines = ["{"]
    items = list(doc.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if k == "history":
            lines.append(' "history": {')
            hitems = list(v.items())
            for j, (hk, hv) in enumerate(hitems):
                hc = "," if j < len(hitems) - 1 else ""
                if isinstance(hv, list) and hv:
                    lines.append(f'  "{hk}": [')
                    lines += [
                        "   " + json.dumps(x) + ("," if n < len(hv) - 1 else "")
                        for n, x in enumerate(hv)
                    ]
                    lines.append(f"  ]{hc}")
                else:
                    lines.append(f'  "{hk}": {json.dumps(hv)}{hc}')
            lines.append(f" }}{comma}")
        elif k == "final_states":
            lines.append(' "final_states": [')
            for n, s in enumerate(v):
                rows = s.pop("rows")
                head = json.dumps(s)[:-1]
                if rows is None:
                    lines.append(f'  {head}, "rows": null}}' + ("," if n < len(v) - 1 else ""))
                else:
                    lines.append(f'  {head}, "rows": [')
                    lines += [
                        "   " + json.dumps(r) + ("," if m < len(rows) - 1 else "")
                        for m, r in enumerate(rows)
                    ]
                    lines.append("  ]}" + ("," if n < len(v) - 1 else ""))
            lines.append(f" ]{comma}")
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}{comma}")
    lines.append("}")
    (OUT / f"{name}.json").write_text("\n".join(lines) + "\n")


def rows_of(applied):
    return [Row(rid, a.writer_id, a.seq, h, h) for rid, a, h in applied]


# 1. Clean failover (MySQL 8): mysql-0 killed, mysql-1 promoted; two in-flight commits applied.
def clean_failover():
    rng = random.Random(11)
    A, B = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "7d1c0a52-c0f3-11ef-8b6e-0242ac120004"
    old, new, rejoined = f"{A}@1732640000", f"{B}@1732640003", f"{A}@1732650011"
    crash, promoted = T0 + 4.0, T0 + 6.5
    writers = [Writer(f"c0ffee-1-{i}", T0 + 0.01 * i, rng) for i in range(3)]
    _attempts, applied, reads = [], [], []
    rid = 0
    n_a = n_b = 0
    events = []
    for w in writers:
        while w.t < T0 + 10:
            if w.t < crash - 0.3:
                a = attempt(w, Outcome.OK, old, "mysql-0", None, None, rng.uniform(0.003, 0.02))
            elif w.t < crash + 0.3:
                # In flight when mysql-0 died: writers 0 and 1 had committed, writer 2 had not.
                w.t = min(w.t, crash - 0.01)
                a = attempt(
                    w, Outcome.INDETERMINATE, old, "mysql-0", None, LOST_CONN, crash - w.t + 0.001
                )
                events.append(("maybe", a, w.wid != "c0ffee-1-2"))
                w.t = crash + 0.3
                continue
            elif w.t < promoted:
                a = attempt(w, Outcome.FAILED, f"{B}@1732640003", "mysql-1", None, READ_ONLY, 0.002)
                events.append(("failed", a, False))
                w.t += 0.8
                continue
            else:
                a = attempt(w, Outcome.OK, new, "mysql-1", None, None, rng.uniform(0.003, 0.02))
            events.append(("ok", a, True))
            w.step(4)
    # Row ids follow commit order across writers.
    events.sort(key=lambda e: e[1].complete_wall)
    final = []
    for kind, raw, applies in events:
        a = raw
        if applies and kind in ("ok", "maybe"):
            rid += 1
            if a.server == old:
                n_a += 1
            else:
                n_b += 1
            if kind == "ok":
                a = replace(a, row_id=rid)
            applied.append((rid, a, a.payload_sha256))
        final.append(a)
    gtid = f"{A}:1-{n_a},{B}:1-{n_b}"
    # Reads through mysql-read, each backend a little behind the primary but never beyond 5 s.
    for k in range(40):
        t = T0 + 0.25 * k + 0.1
        w = writers[k % 3].wid
        node = ["mysql-1", "mysql-2"][k % 2] if t < crash + 8 else ["mysql-0", "mysql-2"][k % 2]
        delay = 0.05 if node != "mysql-0" else 0.1
        seen = [a.seq for _, a, _ in applied if a.writer_id == w and a.complete_wall <= t - delay]
        server = {
            "mysql-0": rejoined,
            "mysql-1": new,
            "mysql-2": "a8b2c3d4-c0f3-11ef-8b6e-0242ac120005@1732640004",
        }[node]
        reads.append(Read(t, w, max(seen, default=None), node, server))
    rows = rows_of(applied)
    states = [
        NodeState("mysql-1", Role.PRIMARY, rows=rows, gtid=gtid, server=new),
        NodeState(
            "mysql-0", Role.REPLICA, rows=[Row(*r) for r in rows], gtid=gtid, server=rejoined
        ),
        NodeState(
            "mysql-2",
            Role.REPLICA,
            rows=[Row(*r) for r in rows],
            gtid=gtid,
            server="a8b2c3d4-c0f3-11ef-8b6e-0242ac120005@1732640004",
        ),
    ]
    history = History(attempts=final, reads=reads)
    recovered = sum(1 for kind, a, ap in events if kind == "maybe" and ap)
    expected = {
        "valid": True,
        "anomaly_counts": {},
        "anomalies": [],
        "recovered": recovered,
        "unknown_nodes": [],
    }
    dump(
        "clean-failover-mysql",
        "MySQL 8: mysql-0 SIGKILLed mid-commit, mysql-1 promoted 2.5 s later, "
        "mysql-0 restarted and rejoined as a replica. Two in-flight commits had applied "
        "(recovered), one had not; writes during the promotion were refused read-only (failed). "
        "Nothing acknowledged "
        "is missing: valid.",
        "mysql",
        history,
        states,
        expected,
    )


# 2. Zombie primary after a force delete (MariaDB 10.11).
def zombie_primary():
    rng = random.Random(22)
    old, new = "1@mysql-0:3306@1732640000", "2@mysql-1:3306@1732640001"
    other, restarted = "3@mysql-2:3306@1732640002", "1@mysql-0:3306@1732650031"
    partition, promoted, zombie_dies = T0 + 3.0, T0 + 6.0, T0 + 9.0
    writers = [Writer(f"5eed22-1-{i}", T0 + 0.013 * i, rng) for i in range(3)]
    events = []
    for w in writers:
        while w.t < T0 + 13:
            if w.wid.endswith("2") and partition <= w.t < promoted + 0.2:
                w.t = promoted + 0.2  # its connection broke; new ones could not reach mysql-0
                continue
            if w.t < zombie_dies and not (w.wid.endswith("2") and w.t >= promoted):
                if w.t + 0.3 > zombie_dies:
                    a = attempt(
                        w, Outcome.INDETERMINATE, old, "mysql-0", None, LOST_CONN, zombie_dies - w.t
                    )
                    events.append(a)
                    w.t = zombie_dies + 0.5
                    continue
                a = attempt(w, Outcome.OK, old, "mysql-0", None, None, rng.uniform(0.004, 0.03))
            else:
                a = attempt(w, Outcome.OK, new, "mysql-1", None, None, rng.uniform(0.004, 0.03))
            events.append(a)
            w.step(4)
    events.sort(key=lambda a: a.complete_wall)
    final, on_new, on_old = [], [], []
    rid_new = rid_old = 0
    seq_old = seq_new = 0
    for raw in events:
        a = raw
        if a.outcome is Outcome.OK and a.server == old:
            rid_old += 1
            seq_old += 1
            if a.complete_wall < partition:
                rid_new += 1
                seq_new = seq_old
                on_new.append((rid_new, a, a.payload_sha256))
            a = replace(a, row_id=rid_old)
            on_old.append((rid_old, a, a.payload_sha256))
        elif a.outcome is Outcome.OK:
            rid_new += 1
            seq_new += 1
            a = replace(a, row_id=rid_new)
            on_new.append((rid_new, a, a.payload_sha256))
        final.append(a)
    n_before = sum(1 for _, a, _ in on_new if a.server == old)
    primary_gtid = f"0-1-{n_before},0-2-{seq_new}"
    old_gtid = f"0-1-{seq_old}"
    reads = []
    for k in range(26):
        t = T0 + 0.5 * k + 0.2
        w = writers[k % 3].wid
        node = "mysql-2" if k % 2 else "mysql-1"
        seen = [a.seq for _, a, _ in on_new if a.writer_id == w and a.complete_wall <= t - 0.05]
        reads.append(Read(t, w, max(seen, default=None), node, other if node == "mysql-2" else new))
    history = History(attempts=final, reads=reads)
    rows_new = rows_of(on_new)
    states = [
        NodeState("mysql-1", Role.PRIMARY, rows=rows_new, gtid=primary_gtid, server=new),
        NodeState(
            "mysql-2",
            Role.REPLICA,
            rows=[Row(*r) for r in rows_new],
            gtid=primary_gtid,
            server=other,
        ),
        # Restarted after the incident; its replication stopped on the conflicting GTIDs.
        NodeState(
            "mysql-0",
            Role.REPLICA,
            rows=rows_of(on_old),
            gtid=old_gtid,
            caught_up=False,
            server=restarted,
        ),
    ]
    lost = [
        ["lost", "mysql-1", a.writer_id, a.seq]
        for a in final
        if a.outcome is Outcome.OK and a.server == old and a.complete_wall >= partition
    ]
    first_new = min(
        (a for a in final if a.server == new and a.outcome is Outcome.OK),
        key=lambda a: a.complete_wall,
    )
    stale = brute_stale(final, reads)
    anomalies = sorted(
        [
            *lost,
            ["split_brain", "mysql-1", first_new.writer_id, first_new.seq],
            ["errant", "mysql-0", None, None],
            *stale,
        ],
        key=str,
    )
    counts = {}
    for x in anomalies:
        counts[x[0]] = counts.get(x[0], 0) + 1
    expected = {
        "valid": False,
        "anomaly_counts": counts,
        "anomalies": anomalies,
        "recovered": 0,
        "unknown_nodes": [],
    }
    dump(
        "zombie-primary-force-delete-mariadb",
        "MariaDB 10.11: kubelet stopped on mysql-0's node and "
        "replication from it cut; mysql-0 was force-deleted and mysql-1 promoted while the old "
        "mysql-0 "
        "kept acknowledging writes on its open connections for 6 s. Those acks are lost on the new "
        "primary, the two identities acked in overlapping time (split brain), the restarted "
        "mysql-0 "
        "holds errant GTIDs, and reads through mysql-read went stale.",
        "mariadb",
        history,
        states,
        expected,
    )


# 3. A lagging replica promoted after semi-sync fell back to async (MySQL 8).
def lagging_promoted():
    rng = random.Random(33)
    A, B = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "7d1c0a52-c0f3-11ef-8b6e-0242ac120004"
    old, new = f"{A}@1732640000", f"{B}@1732640003"
    r2 = "a8b2c3d4-c0f3-11ef-8b6e-0242ac120005@1732640004"
    crash, promoted = T0 + 8.0, T0 + 10.0
    lag1, lag2 = 1.5, 0.2
    writers = [Writer(f"1a9b00-2-{i}", T0 + 0.007 * i, rng) for i in range(3)]
    events = []
    for w in writers:
        while w.t < T0 + 14:
            if w.t < crash - 0.1:
                a = attempt(w, Outcome.OK, old, "mysql-0", None, None, rng.uniform(0.002, 0.01))
            elif w.t < crash:
                a = attempt(w, Outcome.INDETERMINATE, old, "mysql-0", None, LOST_CONN, crash - w.t)
                events.append(a)
                w.t = promoted + 0.1 + rng.uniform(0, 0.2)
                continue
            else:
                a = attempt(w, Outcome.OK, new, "mysql-1", None, None, rng.uniform(0.002, 0.01))
            events.append(a)
            w.step(4)
    events.sort(key=lambda a: a.complete_wall)
    final, on_old, on_new, on_r2 = [], [], [], []
    rid_old = 0
    for raw in events:
        a = raw
        if a.outcome is Outcome.OK and a.server == old:
            rid_old += 1
            a = replace(a, row_id=rid_old)
            on_old.append((rid_old, a, a.payload_sha256))
            if a.complete_wall <= crash - lag1:
                on_new.append((rid_old, a, a.payload_sha256))
            if a.complete_wall <= crash - lag2:
                on_r2.append((rid_old, a, a.payload_sha256))
        final.append(a)
    # The new primary's AUTO_INCREMENT continues from its own rows: it reuses the lost rows' ids.
    rid_new = len(on_new)
    final2 = []
    n_b = 0
    for raw in final:
        a = raw
        if a.outcome is Outcome.OK and a.server == new:
            rid_new += 1
            n_b += 1
            a = replace(a, row_id=rid_new)
            on_new.append((rid_new, a, a.payload_sha256))
        final2.append(a)
    final = final2
    reads = []
    for k in range(28):
        t = T0 + 0.5 * k + 0.3
        w = writers[k % 3].wid
        node = "mysql-1" if k % 2 else "mysql-2"
        lag = lag1 if node == "mysql-1" and t < promoted else 0.05
        src = on_new if node == "mysql-1" else on_r2
        seen = [a.seq for _, a, _ in src if a.writer_id == w and a.complete_wall <= t - lag]
        reads.append(Read(t, w, max(seen, default=None), node, new if node == "mysql-1" else r2))
    history = History(attempts=final, reads=reads)
    n_new_a, n_r2 = sum(1 for _, a, _ in on_new if a.server == old), len(on_r2)
    states = [
        NodeState(
            "mysql-1",
            Role.PRIMARY,
            rows=rows_of(on_new),
            gtid=f"{A}:1-{n_new_a},{B}:1-{n_b}",
            server=new,
        ),
        # Re-pointed at mysql-1, its SQL thread stopped on a duplicate key (error 1062).
        NodeState(
            "mysql-2",
            Role.REPLICA,
            rows=rows_of(on_r2),
            gtid=f"{A}:1-{n_r2}",
            caught_up=False,
            server=r2,
        ),
        NodeState(
            "mysql-0",
            Role.REPLICA,
            error=(
                "(2003, \"Can't connect to MySQL server on 'mysql-0.mysql' "
                '([Errno 111] Connection refused)")'
            ),
        ),
    ]
    lost = [
        ["lost", "mysql-1", a.writer_id, a.seq]
        for _, a, _ in on_old
        if a.complete_wall > crash - lag1
    ]
    anomalies = sorted(
        [*lost, ["errant", "mysql-2", None, None], *brute_stale(final, reads)], key=str
    )
    counts = {}
    for x in anomalies:
        counts[x[0]] = counts.get(x[0], 0) + 1
    expected = {
        "valid": False,
        "anomaly_counts": counts,
        "anomalies": anomalies,
        "recovered": 0,
        "unknown_nodes": ["mysql-0"],
    }
    dump(
        "lagging-replica-promoted-mysql",
        "MySQL 8: semi-sync had fallen back to async and mysql-1 "
        "lagged 1.5 s when mysql-0 crashed; the operator promoted mysql-1 at once. The writes "
        "acknowledged in mysql-0's last 1.5 s are lost (the new primary reused their row ids), "
        "mysql-2 is ahead of the new primary on mysql-0's GTIDs (errant) and stopped replicating, "
        "and mysql-0 cannot be reached.",
        "mysql",
        history,
        states,
        expected,
    )


# 4. Clean run, but one replica cannot be read at the end (MySQL 8).
def replica_unreachable():
    rng = random.Random(44)
    A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    p = f"{A}@1732640000"
    writers = [Writer(f"77aa01-1-{i}", T0 + 0.011 * i, rng) for i in range(2)]
    events = []
    for w in writers:
        while w.t < T0 + 6:
            events.append(
                attempt(w, Outcome.OK, p, "mysql-0", None, None, rng.uniform(0.002, 0.01))
            )
            w.step(5)
    events.sort(key=lambda a: a.complete_wall)
    final, applied = [], []
    for i, raw in enumerate(events, 1):
        a = raw
        a = replace(a, row_id=i)
        applied.append((i, a, a.payload_sha256))
        final.append(a)
    reads = []
    for k in range(12):
        t = T0 + 0.5 * k + 0.25
        w = writers[k % 2].wid
        seen = [a.seq for _, a, _ in applied if a.writer_id == w and a.complete_wall <= t - 0.02]
        reads.append(
            Read(
                t,
                w,
                max(seen, default=None),
                "mysql-1",
                "c4d5e6f7-c0f3-11ef-8b6e-0242ac120006@1732640002",
            )
        )
    gtid = f"{A}:1-{len(applied)}"
    rows = rows_of(applied)
    states = [
        NodeState("mysql-0", Role.PRIMARY, rows=rows, gtid=gtid, server=p),
        NodeState("mysql-1", Role.REPLICA, rows=[Row(*r) for r in rows], gtid=gtid),
        NodeState(
            "mysql-2",
            Role.REPLICA,
            error="(2003, \"Can't connect to MySQL server on 'mysql-2.mysql' (timed out)\")",
        ),
    ]
    expected = {
        "valid": "unknown",
        "anomaly_counts": {},
        "anomalies": [],
        "recovered": 0,
        "unknown_nodes": ["mysql-2"],
    }
    dump(
        "replica-unreachable-at-final-read",
        "MySQL 8: a clean 6 s run, but mysql-2's node was cordoned "
        "and drained as the run ended, so its final state could not be read: unknown, never valid.",
        "mysql",
        History(attempts=final, reads=reads),
        states,
        expected,
    )


# 5. Bank workload: a transfer applied by half on a non-transactional table (MariaDB 10.11).
def bank_half():
    rng = random.Random(55)
    total, amount = 100000, 250
    broken = T0 + 5.02
    nodes = {
        "mysql-0": "1@mysql-0:3306@1732640000",
        "mysql-1": "2@mysql-1:3306@1732640001",
        "mysql-2": "3@mysql-2:3306@1732640002",
    }
    obs = []
    for k in range(30):
        t = round(T0 + 0.33 * k + rng.uniform(0, 0.05), 6)
        node = ["mysql-0", "mysql-1", "mysql-2"][k % 3]
        seen = total - amount if t > broken + (0.0 if node == "mysql-0" else 0.08) else total
        obs.append(BankObservation(node, t, seen, nodes[node]))
    gtid = "0-1-" + str(30 * 4 + 7)
    states = [
        NodeState(
            "mysql-0", Role.PRIMARY, gtid=gtid, bank_total=total - amount, server=nodes["mysql-0"]
        ),
        NodeState(
            "mysql-1", Role.REPLICA, gtid=gtid, bank_total=total - amount, server=nodes["mysql-1"]
        ),
        NodeState(
            "mysql-2", Role.REPLICA, gtid=gtid, bank_total=total - amount, server=nodes["mysql-2"]
        ),
    ]
    anomalies = sorted(
        [["bank_total", o.node, None, None] for o in obs if o.total != total]
        + [["bank_total", n, None, None] for n in nodes],
        key=str,
    )
    expected = {
        "valid": False,
        "anomaly_counts": {"bank_total": len(anomalies)},
        "anomalies": anomalies,
        "recovered": 0,
        "unknown_nodes": [],
    }
    dump(
        "bank-half-transfer-mariadb",
        "MariaDB 10.11: the accounts table was created with ENGINE=Aria "
        "(not transactional); a connection lost between the two UPDATEs of a 250 transfer left the "
        "debit without the credit. Every later total, on every node, is 250 short.",
        "mariadb",
        History(bank=obs, bank_total=total),
        states,
        expected,
    )


def main() -> None:
    for make in (clean_failover, zombie_primary, lagging_promoted, replica_unreachable, bank_half):
        make()


if __name__ == "__main__":
    main()
