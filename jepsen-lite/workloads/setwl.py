"""set: unique adds (one key per element under a prefix) and, after the
faults, a final read of the whole prefix on every member (serializable,
each member's own copy) and one linearizable read.

Lost: an acknowledged add missing from a final read.  Unexpected: an
element present that was never added, or whose add certainly failed.
Every member's final copy must equal the linearizable read (the members
converged once healed)."""
from __future__ import annotations

import time

from ..client import EtcdClient, Indeterminate, Refused
from ..history import FAIL, OK, pairs
from .base import Workload

PREFIX = b"/jl/set/"
END = b"/jl/set0"


class SetWorkload(Workload):
    name = "set"

    def operation(self, rng, process, state):
        state["n"] = state.get("n", 0) + 1
        return "add", process * 1_000_000 + state["n"]

    def apply(self, client: EtcdClient, f, value, state):
        client.put(PREFIX + b"%d" % value, b"")
        return value

    def _read(self, ctx, m, serializable: bool):
        client = EtcdClient(m.endpoint, 10.0)
        f = "final-read-s" if serializable else "final-read"
        inv = ctx.recorder.invoke("final", f, m.endpoint, member=m.endpoint, workload=self.name)
        try:
            resp = client.get(PREFIX, END, serializable=serializable, keys_only=True)
        except (Refused, Indeterminate) as exc:
            ctx.recorder.complete(inv, FAIL, error=str(exc))
            return None
        finally:
            client.close()
        elements = sorted(int(kv.key[len(PREFIX):]) for kv in resp.kvs)
        ctx.recorder.complete(inv, OK, elements)
        return elements

    def final(self, ctx) -> None:
        """The linearizable read first; then each member's own copy, read
        again for up to 10 s while it lags behind (it may still be applying)."""
        truth = None
        for m in ctx.cluster.members:
            truth = self._read(ctx, m, False)
            if truth is not None:
                break
        for m in ctx.cluster.members:
            deadline = time.monotonic() + 10
            while True:
                got = self._read(ctx, m, True)
                if truth is None or (got is not None and len(got) >= len(truth)) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.5)

    def check(self, ops, info: dict) -> dict:
        ps = pairs(ops, self.name)
        adds = [p for p in ps if p.inv.f == "add"]
        ok = {p.inv.value for p in adds if p.type == OK}
        failed = {p.inv.value for p in adds if p.type == FAIL}
        attempted = {p.inv.value for p in adds}
        finals = [p for p in ps if p.inv.f.startswith("final-read") and p.type == OK]
        last = {}
        for p in finals:  # a member's last copy (earlier ones may lag)
            last[(p.inv.f, p.inv.member)] = p
        finals = list(last.values())
        out = {"valid": True, "ops": len(adds), "acknowledged": len(ok), "anomalies": []}
        lin = next((p for p in finals if p.inv.f == "final-read"), None)
        if lin is None:
            out.update(valid=False, anomalies=[{
                "anomaly": "the cluster never answered the final read after healing: "
                           "every acknowledged add is unaccounted for",
                "acknowledged": len(ok)}])
            return out
        truth = set(lin.result)
        for p in finals:
            got = set(p.result)
            lost = sorted(ok - got)
            unexpected = sorted((got - attempted) | (got & failed))
            if lost or unexpected:
                out["anomalies"].append({"anomaly": "lost or unexpected elements",
                                         "read": f"{p.inv.f} @{p.inv.member}", "lost": lost[:50],
                                         "lost_count": len(lost), "unexpected": unexpected[:50]})
            if p is not lin and got != truth:
                out["anomalies"].append({"anomaly": "member diverged from the linearizable read",
                                         "member": p.inv.member,
                                         "missing": sorted(truth - got)[:50],
                                         "extra": sorted(got - truth)[:50]})
        out["valid"] = not out["anomalies"]
        return out
