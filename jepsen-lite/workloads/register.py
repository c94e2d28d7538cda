"""register: per-key reads, writes and compare-and-sets (Jepsen's etcd
register workload).

Each key is a register of unique integers.  Operations: ``read``
(linearizable, and ``read-s`` serializable), ``write``, ``cas`` (a Txn
comparing the value) and ``cas-rev`` (a Txn comparing the mod revision the
process last read).  Checks:

- linearizable operations (everything but serializable reads), per key,
  against :class:`RegisterModel` (Wing-Gong-Lowe search).  A failed CAS
  returns the value it found, so every observation is explicit, and
  indeterminate writes are tightened before the search
  (:func:`linear.bound_indeterminate`);
- serializable reads only for what etcd promises them: on one member (by
  member id: a member removed and added back empty is a new one), the
  reads of a key that do not overlap in time see non-decreasing mod
  revisions, and every value read was written by someone.
"""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from ..checkers import linear
from ..history import OK, pairs
from .base import Workload

PREFIX = b"/jl/register/"
KEYS = 5


def key_of(k: int) -> bytes:
    return PREFIX + b"%d" % k


def _put(k: int, v: int) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key_of(k), value=b"%d" % v))


class Register(Workload):
    name = "register"

    def operation(self, rng, process, state):
        k = rng.randrange(KEYS)
        r = rng.random()
        state["n"] = state.get("n", 0) + 1
        fresh = process * 1_000_000 + state["n"]
        if r < 0.35:
            return "read", k
        if r < 0.45:
            return "read-s", k
        if r < 0.7:
            return "write", (k, fresh)
        last = state.get(("last", k))
        if r < 0.85:
            old = last[0] if last and last[0] is not None else rng.randrange(1, 10)
            return "cas", (k, old, fresh)
        return "cas-rev", (k, last[1] if last else 0, fresh)

    def apply(self, client, f, value, state):
        if f in ("read", "read-s"):
            k = value
            resp = client.get(key_of(k), serializable=(f == "read-s"))
            result = (int(resp.kvs[0].value), resp.kvs[0].mod_revision) if resp.kvs else (None, 0)
            state[("last", k)] = result
            if f == "read-s":   # which member answered (an endpoint may get a new one)
                return result + (resp.header.member_id,)
            return result
        if f == "write":
            k, v = value
            return client.put(key_of(k), b"%d" % v).header.revision
        k, expect, new = value
        if f == "cas":
            cmp = pb.Compare(key=key_of(k), target=pb.Compare.VALUE, result=pb.Compare.EQUAL,
                             value=b"%d" % expect if expect is not None else b"")
        else:
            cmp = pb.Compare(key=key_of(k), target=pb.Compare.MOD, result=pb.Compare.EQUAL,
                             mod_revision=expect)
        resp = client.txn(pb.TxnRequest(compare=[cmp], success=[_put(k, new)], failure=[
            pb.RequestOp(request_range=pb.RangeRequest(key=key_of(k)))]))
        if resp.succeeded:
            return [True, resp.header.revision]
        kvs = resp.responses[0].response_range.kvs   # a failed CAS observes the register
        seen = (int(kvs[0].value), kvs[0].mod_revision) if kvs else (None, 0)
        state[("last", k)] = seen
        return [False, seen[0], seen[1]]

    def check(self, ops, info: dict) -> dict:
        ps = pairs(ops, self.name)
        by_key: dict = {}
        serial = []
        for p in ps:
            if p.type == "fail":
                continue  # certainly no effect
            f = p.inv.f
            k = p.inv.value if f.startswith("read") else p.inv.value[0]
            if f == "read-s":
                if p.type == OK:
                    serial.append(p)
                continue
            if f == "read" and p.type != OK:
                continue  # a read that did not answer changed nothing
            by_key.setdefault(k, []).append(_call(p))
        dropped = 0
        for k, calls in by_key.items():
            by_key[k], n = linear.bound_indeterminate(calls)
            dropped += n
        v = linear.check(linear.RegisterModel(), by_key)
        out = {"valid": v.valid, "ops": len(ps), "partitions": v.partitions,
               "linearizable": v.valid, "unobserved_indeterminate_writes": dropped,
               "notes": v.notes}
        if v.failure:
            out["anomalies"] = [_describe(v.failure)]
        bad = check_serializable(serial, ps)
        if bad:
            out["valid"] = False
            out.setdefault("anomalies", []).extend(bad)
        return out


def _call(p) -> linear.Call:
    f = p.inv.f
    value, result = p.inv.value, p.result
    if f == "write":
        value = value[1]
    elif f in ("cas", "cas-rev"):
        value = (value[1], value[2])
        if result is not None:
            result = tuple(result)
    elif result is not None:
        result = tuple(result)
    return linear.Call(0, f, value, result, p.start, p.end, p.type == OK, ref=p)


def _describe(failure: dict) -> dict:
    stuck = failure["stuck_on"]
    return {"anomaly": "not linearizable", "key": failure["key"],
            "state_before": failure["state_at_stuck"],
            "cannot_linearize": _op_text(stuck.ref),
            "shortest_illegal_prefix": [_op_text(c.ref) for c in failure["prefix"]],
            "earlier_ops_left_out": failure["prefix_ops_before_window"]}


def _op_text(p) -> str:
    done = p.done
    res = done.value if done is not None else None
    kind = done.type if done is not None else "info"
    return (f"[{p.start:.3f}-{p.end:.3f}] p{p.inv.process} {p.inv.f} {p.inv.value} -> {kind} "
            f"{res} @{p.inv.member}")


def check_serializable(reads, ps) -> list[dict]:
    """Sequential consistency per member for serializable reads."""
    written = {(p.inv.value[0], p.inv.value[-1]) for p in ps if p.inv.f != "read" and
               p.inv.f != "read-s" and p.type != "fail"}
    bad = []
    by_member: dict = {}
    for p in reads:
        k = p.inv.value
        value = p.result[0]
        if value is not None and (k, value) not in written:
            bad.append({"anomaly": "serializable read of a value never written",
                        "op": _op_text(p)})
        member = p.result[2] if len(p.result) > 2 else p.inv.member
        by_member.setdefault((member, k), []).append(p)
    for (member, k), rs in by_member.items():
        rs.sort(key=lambda p: p.start)
        ended = sorted(rs, key=lambda p: p.end)
        j, high = 0, None   # the highest-revision read that returned before p was called
        for p in rs:
            while j < len(ended) and ended[j].end < p.start:
                if high is None or ended[j].result[1] > high.result[1]:
                    high = ended[j]
                j += 1
            if high is not None and p.result[1] < high.result[1]:
                bad.append({"anomaly": "serializable reads went back in time on one member",
                            "member": f"{member:x}" if isinstance(member, int) else member,
                            "earlier": _op_text(high), "later": _op_text(p)})
    return bad
