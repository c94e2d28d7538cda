"""lock: v3lock sessions guarding a register with a fencing token.

Each client: grant a session lease, ``Lock`` (the lock key's create
revision is the fencing token), write the register with a Txn that
succeeds only while the lock key still exists with that create revision,
hold a moment, ``Unlock``, revoke the session.

Locks are not safe under faults (a paused holder whose lease expired still
believes it holds the lock: Jepsen's etcd 3.4.3 analysis), so overlapping
holders are reported, not failed; the guarantee checked is the fence's:
the register's successful writes, in revision order, never go back to an
older token, and no write succeeded for a token whose lock was already
held by a newer one."""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from ..history import OK, pairs
from .base import Failed, Workload

LOCK = b"/jl/lock/mutex"
REGISTER = b"/jl/lock/register"
SESSION_TTL = 3


class LockWorkload(Workload):
    name = "lock"

    def operation(self, rng, process, state):
        phase = state.get("phase", "acquire")
        if phase == "acquire":
            return "acquire", None
        if phase == "write":
            state["n"] = state.get("n", 0) + 1
            return "fenced-write", state["n"]
        return "release", None

    def apply(self, client, f, value, state):
        if f == "acquire":
            lease = client.grant(SESSION_TTL).ID
            state["lease"] = lease
            resp = client.lock_acquire(LOCK, lease, timeout=SESSION_TTL * 2)
            kv = client.get(resp.key).kvs
            if not kv:
                return Failed("the lock key vanished right after the lock was granted")
            state.update(key=resp.key, token=kv[0].create_revision, phase="write")
            return [resp.key.decode(), kv[0].create_revision]
        if f == "fenced-write":
            t = pb.TxnRequest(
                compare=[pb.Compare(key=state["key"], target=pb.Compare.CREATE,
                                    result=pb.Compare.EQUAL, create_revision=state["token"])],
                success=[pb.RequestOp(request_put=pb.PutRequest(
                    key=REGISTER, value=b"%d" % state["token"]))])
            state["phase"] = "release"
            resp = client.txn(t)
            if not resp.succeeded:
                return Failed("fenced out: the lock key is gone", [state["token"], None])
            return [state["token"], resp.header.revision]
        state["phase"] = "acquire"
        client.lock_release(state["key"])
        client.revoke(state["lease"])
        return state["token"]

    def run_op(self, ctx, client, process, f, value, state):
        result = super().run_op(ctx, client, process, f, value, state)
        if result is None and f != "acquire":
            state["phase"] = "acquire"   # an unknown outcome: start a new session
        return result

    def check(self, ops, info: dict) -> dict:
        ps = pairs(ops, self.name)
        holds = _holds(ps)
        writes = sorted((p.result[1], p.result[0], p) for p in ps
                        if p.inv.f == "fenced-write" and p.type == OK)
        anomalies = []
        for (r1, t1, p1), (r2, t2, p2) in zip(writes, writes[1:]):
            if t2 < t1:
                anomalies.append({"anomaly": "fenced write with an older token after a newer one",
                                  "earlier": f"token {t1} at revision {r1} by p{p1.inv.process}",
                                  "later": f"token {t2} at revision {r2} by p{p2.inv.process}"})
        overlaps = _overlaps(holds)
        return {"valid": not anomalies, "ops": len(ps), "acquired": len(holds),
                "fenced_writes": len(writes), "overlapping_holders": len(overlaps),
                "overlaps_saved_by_fencing": len(overlaps) - len(anomalies),
                "overlap_examples": overlaps[:5], "anomalies": anomalies}


def _holds(ps) -> list[tuple]:
    """(acquired at, released at, process, token): from an acquire's return
    to the invocation of the process's next release -- or the end of its
    session lease, granted just before the acquire and never kept alive."""
    by_proc: dict = {}
    for p in sorted(ps, key=lambda p: p.start):
        by_proc.setdefault(p.inv.process, []).append(p)
    holds = []
    for proc, seq in by_proc.items():
        for i, p in enumerate(seq):
            if p.inv.f == "acquire" and p.type == OK:
                end = next((q.start for q in seq[i + 1:] if q.inv.f in ("release", "acquire")),
                           float("inf"))
                holds.append((p.end, min(end, p.start + SESSION_TTL), proc, p.result[1]))
    return holds


def _overlaps(holds) -> list[str]:
    holds = sorted(holds)
    out = []
    for i, (a0, a1, pa, ta) in enumerate(holds):
        for b0, b1, pb_, tb in holds[i + 1:]:
            if b0 >= a1:
                break
            out.append(f"p{pa} token {ta} [{a0:.2f}-{a1:.2f}] and p{pb_} token {tb} "
                       f"[{b0:.2f}-{b1:.2f}]")
    return out
