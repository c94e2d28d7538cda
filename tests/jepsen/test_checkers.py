"""jepsen-lite's checkers reject hand-made bad histories and accept the
good ones (no servers: histories built op by op)."""
from __future__ import annotations

import itertools

import pytest

from jepsen_lite.checkers import elle, linear
from jepsen_lite.checkers.watch import check_watch
from jepsen_lite.history import FAIL, INFO, INVOKE, OK, Op, pairs
from jepsen_lite.workloads.lock import LockWorkload
from jepsen_lite.workloads.register import Register
from jepsen_lite.workloads.setwl import SetWorkload


class H:
    """A history under construction: ``op(process, f, value, start, end,
    type, result)`` adds an invocation and its completion."""

    def __init__(self, workload: str):
        self.ops: list[Op] = []
        self.w = workload
        self.n = itertools.count()

    def op(self, process, f, value, start, end, type_=OK, result=None, member="m0"):
        i = next(self.n)
        self.ops.append(Op(process, INVOKE, f, value, start, member, self.w, index=i))
        if type_ is not None:
            self.ops.append(Op(process, type_, f, result, end, member, self.w, index=next(self.n),
                               ref=i))
        return self

    def sorted(self):
        return sorted(self.ops, key=lambda o: o.time)


# ---- linearizability (register) -------------------------------------------------------------
def _register(h: H) -> dict:
    return Register().check(h.sorted(), {})


def test_register_accepts_a_linearizable_history():
    h = H("register")
    h.op(1, "write", (0, 10), 0.0, 1.0, OK, 2)
    h.op(2, "read", 0, 0.5, 1.5, OK, (10, 2))          # concurrent with the write: may see it
    h.op(3, "cas", (0, 10, 11), 2.0, 3.0, OK, (True, 3))
    h.op(1, "read", 0, 3.5, 4.0, OK, (11, 3))
    h.op(2, "write", (0, 12), 4.5, 5.0, INFO)            # unknown: may or may not have happened
    h.op(3, "read", 0, 6.0, 6.5, OK, (12, 9))            # ... it did, at some revision
    assert _register(h)["valid"]


def test_register_rejects_a_stale_read():
    h = H("register")
    h.op(1, "write", (0, 10), 0.0, 1.0, OK, 2)
    h.op(1, "write", (0, 11), 2.0, 3.0, OK, 3)
    h.op(2, "read", 0, 4.0, 5.0, OK, (10, 2))
    v = _register(h)
    assert not v["valid"] and v["anomalies"][0]["anomaly"] == "not linearizable"
    assert "read 0 -> ok (10, 2)" in v["anomalies"][0]["cannot_linearize"]


def test_register_rejects_a_lost_write():
    h = H("register")
    h.op(1, "write", (0, 10), 0.0, 1.0, OK, 2)
    h.op(2, "read", 0, 2.0, 3.0, OK, (None, 0))
    assert not _register(h)["valid"]


def test_register_rejects_a_double_cas_success():
    h = H("register")
    h.op(1, "write", (0, 10), 0.0, 1.0, OK, 2)
    h.op(2, "cas", (0, 10, 20), 2.0, 3.0, OK, (True, 3))
    h.op(3, "cas", (0, 10, 30), 4.0, 5.0, OK, (True, 4))
    assert not _register(h)["valid"]


def test_register_rejects_a_failed_cas_that_saw_a_value_nobody_had():
    h = H("register")
    h.op(1, "write", (0, 10), 0.0, 1.0, OK, 2)
    h.op(2, "cas", (0, 7, 20), 2.0, 3.0, OK, (False, 99, 2))
    assert not _register(h)["valid"]


def test_register_serializable_reads_may_lag_but_not_go_back():
    h = H("register")
    h.op(1, "write", (0, 10), 0.0, 1.0, OK, 2)
    h.op(1, "write", (0, 11), 2.0, 3.0, OK, 3)
    h.op(2, "read-s", 0, 4.0, 4.1, OK, (10, 2), member="m1")  # lagging: allowed
    assert _register(h)["valid"]
    h.op(2, "read-s", 0, 5.0, 5.1, OK, (11, 3), member="m1")
    h.op(2, "read-s", 0, 6.0, 6.1, OK, (10, 2), member="m1")  # back in time on one member
    v = _register(h)
    assert not v["valid"]
    assert v["anomalies"][0]["anomaly"] == "serializable reads went back in time on one member"


def test_linearizability_checks_10000_operations_of_one_key():
    """Correctness at size (the speed figure is bench/bench_linearizability.py's)."""
    calls, value, rev = [], None, 0
    for i in range(10_000):
        start, end = i * 0.001, i * 0.001 + 0.0015   # each overlaps the next
        if i % 3 == 0:
            value, rev = i, i + 2
            calls.append(linear.Call(i, "write", i, rev, start, end, True))
        else:
            calls.append(linear.Call(i, "read", None, (value, rev), start, end, True))
    v = linear.check(linear.RegisterModel(), {"k": calls})
    assert v.valid and v.ops == 10_000


# ---- list-append (Elle) ------------------------------------------------------------------
def _append(h: H) -> dict:
    return elle.check_list_append(h.sorted(), "append")


def _txn(*mops):
    return [list(m) for m in mops]


def test_append_accepts_a_serial_history():
    h = H("append")
    h.op(1, "txn", _txn(("append", 0, 1)), 0, 1, OK, _txn(("append", 0, 1)))
    h.op(2, "txn", _txn(("append", 0, 2), ("r", 0, None)), 2, 3, OK,
         _txn(("append", 0, 2), ("r", 0, [1, 2])))
    h.op("final", "txn", _txn(("r", 0, None)), 4, 5, OK, _txn(("r", 0, [1, 2])))
    v = _append(h)
    assert v["valid"], v


def test_append_finds_g1c_cycle():
    """T1 appends x, reads y=[b]; T2 appends y, reads x=[a]: each read the
    other's write (wr both ways)."""
    h = H("append")
    h.op(1, "txn", _txn(("append", 0, 1), ("r", 1, None)), 0, 1, OK,
         _txn(("append", 0, 1), ("r", 1, [2])))
    h.op(2, "txn", _txn(("append", 1, 2), ("r", 0, None)), 0, 1, OK,
         _txn(("append", 1, 2), ("r", 0, [1])))
    names = [a["anomaly"] for a in _append(h)["anomalies"]]
    assert "G1c" in names, names


def test_append_finds_g2_anti_dependency_cycle():
    """Write skew: both read the other's key empty, then both append."""
    h = H("append")
    h.op(1, "txn", _txn(("r", 1, None), ("append", 0, 1)), 0, 1, OK,
         _txn(("r", 1, []), ("append", 0, 1)))
    h.op(2, "txn", _txn(("r", 0, None), ("append", 1, 2)), 0, 1, OK,
         _txn(("r", 0, []), ("append", 1, 2)))
    h.op(3, "txn", _txn(("r", 0, None), ("r", 1, None)), 2, 3, OK,
         _txn(("r", 0, [1]), ("r", 1, [2])))
    names = [a["anomaly"] for a in _append(h)["anomalies"]]
    assert "G2" in names, names


def test_append_finds_aborted_read_lost_append_and_incompatible_order():
    h = H("append")
    h.op(1, "txn", _txn(("append", 0, 1)), 0, 1, FAIL, _txn(("append", 0, 1)))
    h.op(2, "txn", _txn(("r", 0, None)), 2, 3, OK, _txn(("r", 0, [1])))
    h.op(3, "txn", _txn(("append", 1, 5)), 0, 1, OK, _txn(("append", 1, 5)))
    h.op(4, "txn", _txn(("append", 2, 7)), 0, 1, OK, _txn(("append", 2, 7)))
    h.op(5, "txn", _txn(("append", 2, 8)), 1.5, 1.8, OK, _txn(("append", 2, 8)))
    h.op(6, "txn", _txn(("r", 2, None)), 2, 3, OK, _txn(("r", 2, [8])))
    h.op(7, "txn", _txn(("r", 2, None)), 3, 4, OK, _txn(("r", 2, [7, 8])))
    h.op("final", "txn", _txn(("r", 1, None)), 5, 6, OK, _txn(("r", 1, [])))
    names = {a["anomaly"] for a in _append(h)["anomalies"]}
    assert {"G1a (aborted read)", "lost append", "incompatible-order"} <= names, names


def test_append_realtime_violation():
    """T2 begins after T1 committed its append but reads x without it (the
    final read places the append in x's order)."""
    h = H("append")
    h.op(1, "txn", _txn(("append", 0, 1)), 0, 1, OK, _txn(("append", 0, 1)))
    h.op(2, "txn", _txn(("r", 0, None)), 2, 3, OK, _txn(("r", 0, [])))
    h.op("final", "txn", _txn(("r", 0, None)), 4, 5, OK, _txn(("r", 0, [1])))
    names = [a["anomaly"] for a in _append(h)["anomalies"]]
    assert any(n.endswith("-realtime") for n in names), names


# ---- set -------------------------------------------------------------------------------
def test_set_reports_lost_and_unexpected_elements():
    h = H("set")
    for v in (1, 2, 3):
        h.op(1, "add", v, v, v + 0.5, OK, v)
    h.op(1, "add", 4, 5, 5.5, FAIL)
    h.op("final", "final-read", "m0", 10, 11, OK, [1, 3, 4, 9], member="m0")
    v = SetWorkload().check(h.sorted(), {})
    a = v["anomalies"][0]
    assert not v["valid"] and a["lost"] == [2] and a["unexpected"] == [4, 9]


# ---- watch -------------------------------------------------------------------------------
def _ev(rev, key, value, create, version, prev=None, typ=0):
    return [rev, typ, key, value, create, version, prev]


REF = [_ev(5, "/k1", "a", 5, 1), _ev(6, "/k2", "b", 6, 1), _ev(7, "/k1", "c", 5, 2, "a"),
       _ev(8, "/k2", "", 6, 0, "b", typ=1)]


def _watch(responses, start=5, filters=()) -> dict:
    h = H("watch")
    t = itertools.count(1)
    h.op("w", "watch-start", None, next(t), next(t), OK, {"w": "w", "from": start,
                                                          "filters": list(filters)})
    for r in responses:
        h.op("w", "watch-resp", None, next(t), next(t), OK,
             {"w": "w", "rev": r.get("rev", 0), "events": r.get("events", []),
              "created": r.get("created", False), "canceled": False, "compact": 0})
    h.op("final", "reference", None, 100, 101, OK, {"from": start, "head": 9, "events": REF})
    return check_watch(pairs(h.sorted(), "watch"))


def test_watch_accepts_the_reference():
    assert _watch([{"created": True, "rev": 4}, {"events": REF[:2], "rev": 6},
                   {"events": REF[2:], "rev": 8}])["valid"]


def test_watch_finds_a_gap_a_duplicate_and_disorder():
    gap = _watch([{"events": [REF[0]], "rev": 5}, {"events": [REF[2], REF[3]], "rev": 8}])
    assert "events missed (reliable)" in {a["anomaly"] for a in gap["anomalies"]}
    dup = _watch([{"events": REF[:2], "rev": 6}, {"events": [REF[1]], "rev": 6}])
    assert "duplicate event (unique)" in {a["anomaly"] for a in dup["anomalies"]}
    back = _watch([{"events": [REF[2]], "rev": 7}, {"events": [REF[0]], "rev": 7}])
    assert "event out of order (ordered)" in {a["anomaly"] for a in back["anomalies"]}


def test_watch_finds_wrong_prev_kv_bookmark_and_filter_violations():
    wrong = [REF[0], REF[1], _ev(7, "/k1", "c", 5, 2, "zzz")]
    v = _watch([{"events": wrong, "rev": 7}])
    assert "wrong prev_kv" in {a["anomaly"] for a in v["anomalies"]}
    v = _watch([{"events": [REF[0]], "rev": 5}, {"rev": 7}, {"events": [REF[1]], "rev": 7}])
    assert any("bookmarkable" in a["anomaly"] for a in v["anomalies"])
    v = _watch([{"events": REF, "rev": 8}], filters=[1])
    assert any("filters" in a["anomaly"] for a in v["anomalies"])


# ---- lock --------------------------------------------------------------------------------
def test_lock_flags_a_stale_fenced_write():
    h = H("lock")
    h.op(1, "acquire", None, 0, 1, OK, ["/l/a", 10])
    h.op(1, "fenced-write", 1, 1, 2, OK, [10, 11])
    h.op(2, "acquire", None, 1, 5, OK, ["/l/b", 20])
    h.op(2, "fenced-write", 1, 5, 6, OK, [20, 21])
    h.op(1, "fenced-write", 2, 6, 7, OK, [10, 22])    # a stale holder got through
    v = LockWorkload().check(h.sorted(), {})
    assert not v["valid"] and "older token" in v["anomalies"][0]["anomaly"]


@pytest.mark.parametrize("result", [(9, 2), (None, 0)])
def test_register_checker_needs_the_write_that_explains_a_read(result):
    h = H("register")
    h.op(1, "read", 0, 0, 1, OK, result)
    assert _register(h)["valid"] == (result == (None, 0))
