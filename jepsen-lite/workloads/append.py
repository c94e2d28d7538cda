"""append: transactions that append to and read several keys (Elle's
list-append, as Jepsen's etcd suite runs it).

A transaction is a list of micro-ops ``["append", k, v]`` and ``["r", k,
None]``.  The client reads every key it touches (one read-only txn: one
snapshot), then commits one Txn guarded by the mod revision of each of them:
the appends write the new lists, the reads return the snapshot.  A guard
that fails means the txn certainly did not happen (``fail``).  The checker
(:mod:`..checkers.elle`) looks for dependency cycles (G0, G1c, G-single,
G2, with real-time edges for strict serializability), aborted and
intermediate reads, lost appends and incompatible orders."""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from ..checkers import elle
from ..client import EtcdClient
from .base import Failed, Workload

PREFIX = b"/jl/append/"
KEYS = 8


def key_of(k: int) -> bytes:
    return PREFIX + b"%d" % k


def decode(value: bytes) -> list[int]:
    return [int(x) for x in value.split(b",")] if value else []


class Append(Workload):
    name = "append"

    def operation(self, rng, process, state):
        state["n"] = state.get("n", 0) + 1
        txn = []
        for i in range(rng.randint(1, 4)):
            k = rng.randrange(KEYS)
            if rng.random() < 0.5:
                txn.append(["r", k, None])
            else:
                txn.append(["append", k, process * 1_000_000 + state["n"] * 10 + i])
        return "txn", txn

    def apply(self, client: EtcdClient, f, txn, state):
        keys = sorted({k for _, k, _ in txn})
        snap = client.txn(pb.TxnRequest(success=[
            pb.RequestOp(request_range=pb.RangeRequest(key=key_of(k))) for k in keys]), write=False)
        lists, revs = {}, {}
        for k, r in zip(keys, snap.responses):
            kvs = r.response_range.kvs
            lists[k] = decode(kvs[0].value) if kvs else []
            revs[k] = kvs[0].mod_revision if kvs else 0
        out, after = [], {k: list(v) for k, v in lists.items()}
        for op, k, v in txn:
            if op == "r":
                out.append(["r", k, list(after[k])])
            else:
                after[k].append(v)
                out.append(["append", k, v])
        written = sorted({k for op, k, _ in txn if op == "append"})
        t = pb.TxnRequest(
            compare=[pb.Compare(key=key_of(k), target=pb.Compare.MOD, result=pb.Compare.EQUAL,
                                mod_revision=revs[k]) for k in keys],
            success=[pb.RequestOp(request_put=pb.PutRequest(
                key=key_of(k), value=",".join(map(str, after[k])).encode())) for k in written])
        if not client.txn(t, write=bool(written)).succeeded:
            return Failed("a key changed between the snapshot and the commit", out)
        return out

    def final(self, ctx) -> None:
        """One last read of every key, so that lost appends show."""
        client = EtcdClient(ctx.endpoint(0), 5.0)
        try:
            self.run_op(ctx, client, "final", "txn", [["r", k, None] for k in range(KEYS)], {})
        finally:
            client.close()

    def check(self, ops, info: dict) -> dict:
        return elle.check_list_append(ops, self.name)
