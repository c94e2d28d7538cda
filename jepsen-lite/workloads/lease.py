"""lease: keys on leases that are kept alive never disappear; keys of
abandoned leases are gone within TTL plus one election timeout.

Each client cycles: grant a lease, put a key on it, keep it alive (a
keep-alive then a read of the key, several times), then abandon it (no
more keep-alives) or revoke it; and reads the keys of its abandoned leases
again after the deadline.  A kept-alive lease promises to live at least
TTL after a keep-alive was sent, so a read that began before that and
found the key gone is an anomaly; an abandoned key still there at a read
that began after its last keep-alive + TTL + election timeout (with no
fault in between) is one too."""
from __future__ import annotations

import time

from ..client import EtcdClient
from ..history import OK, pairs
from .base import Failed, Workload

PREFIX = b"/jl/lease/"
TTL = 3
ELECTION = 1.0       # etcd's default election timeout
SLACK = 2.0          # scheduling slack: the leader checks expiry every 500 ms, then
                     # proposes the revoke; a loaded machine delays both
ROUNDS = 4


class LeaseWorkload(Workload):
    name = "lease"

    def operation(self, rng, process, state):
        abandoned = state.get("abandoned")
        if abandoned and time.monotonic() > abandoned[0][1]:
            return "read-abandoned", abandoned[0][0]
        phase = state.get("phase", "grant")
        if phase == "grant":
            return "grant", None
        if phase == "keep":
            return ("keepalive", state["lease"]) if state["round"] % 2 == 0 else \
                ("read", state["key"])
        return ("revoke", state["lease"]) if rng.random() < 0.3 else ("abandon", state["lease"])

    def apply(self, client, f, value, state):
        if f == "grant":
            lease = client.grant(TTL).ID
            key = PREFIX + b"%x" % lease
            client.put(key, b"x", lease=lease)
            state.update(lease=lease, key=key.decode(), phase="keep", round=0)
            return [lease, key.decode()]
        if f == "keepalive":
            resp = client.keepalive(value)
            self._next(state)
            if resp.TTL <= 0:
                return Failed("lease not found", [value, resp.TTL])
            return [value, resp.TTL]
        if f == "read":
            resp = client.get(value.encode())
            self._next(state)
            return [value, bool(resp.kvs)]
        if f == "revoke":
            client.revoke(value)
            state["phase"] = "grant"
            return value
        if f == "abandon":
            due = time.monotonic() + TTL + ELECTION + 2 * SLACK
            state.setdefault("abandoned", []).append((state["key"], due))
            state["phase"] = "grant"
            return [value, state["key"]]
        state["abandoned"].pop(0)
        return [value, bool(client.get(value.encode()).kvs)]

    def final(self, ctx) -> None:
        """Read, after TTL + election timeout, every abandoned key no client
        came back to."""
        ps = pairs(ctx.recorder.ops, self.name)
        read = {p.inv.value for p in ps if p.inv.f == "read-abandoned"}
        left = [p.result[1] for p in ps if p.inv.f == "abandon" and p.type == OK
                and p.result[1] not in read]
        if not left:
            return
        time.sleep(TTL + ELECTION + 2 * SLACK)
        client = EtcdClient(ctx.endpoint(0), 5.0)
        try:
            for key in left:
                self.run_op(ctx, client, "final", "read-abandoned", key, {"abandoned": [key]})
        finally:
            client.close()

    @staticmethod
    def _next(state) -> None:
        state["round"] += 1
        if state["round"] >= 2 * ROUNDS:
            state["phase"] = "end"

    def run_op(self, ctx, client, process, f, value, state):
        result = super().run_op(ctx, client, process, f, value, state)
        if result is None and f in ("grant", "revoke"):
            state["phase"] = "grant"
        elif result is None and f in ("keepalive", "read"):
            self._next(state)
        return result

    def check(self, ops, info: dict) -> dict:
        ps = pairs(ops, self.name)
        faults = [(o.time, o.f) for o in ops if o.process == "nemesis" and o.type != "invoke"]
        anomalies = _kept_alive_keys_stay(ps) + _abandoned_keys_go(ps, faults)
        return {"valid": not anomalies, "ops": len(ps), "anomalies": anomalies}


def _kept_alive_keys_stay(ps) -> list[dict]:
    out = []
    alive_until: dict[str, float] = {}    # key -> a keep-alive's promise
    lease_key = {p.result[0]: p.result[1] for p in ps if p.inv.f == "grant" and p.type == OK}
    for p in sorted(ps, key=lambda p: p.start):
        if p.inv.f == "grant" and p.type == OK:
            alive_until[p.result[1]] = p.start + TTL
        elif p.inv.f == "keepalive" and p.type == OK and p.result[1] > 0:
            key = lease_key.get(p.result[0])
            if key is not None:
                alive_until[key] = max(alive_until.get(key, 0), p.start + p.result[1])
        elif p.inv.f == "read" and p.type == OK and not p.result[1]:
            key = p.result[0]
            if p.end < alive_until.get(key, 0) - SLACK:
                out.append({"anomaly": "a kept-alive lease's key disappeared", "key": key,
                            "read": f"[{p.start:.2f}-{p.end:.2f}]",
                            "promised_until": round(alive_until[key], 2)})
    return out


def _abandoned_keys_go(ps, faults) -> list[dict]:
    """A key still there at a read that began after its lease's last
    keep-alive + TTL + election timeout is an anomaly; when a fault fell in
    that window the bound counts from the end of the faults (the heal)."""
    out = []
    last_alive: dict[str, float] = {}
    lease_key = {p.result[0]: p.result[1] for p in ps if p.inv.f == "grant" and p.type == OK}
    for p in ps:
        if p.inv.f in ("grant", "keepalive") and p.type in (OK, "info"):
            lid = p.inv.value if p.inv.f == "keepalive" else (p.result[0] if p.result else None)
            key = lease_key.get(lid)
            if key is not None:
                last_alive[key] = max(last_alive.get(key, 0), p.end if p.type == OK else p.start)
    healed = max((t for t, f in faults if f == "healed"), default=None)
    for p in ps:
        if p.inv.f != "read-abandoned" or p.type != OK or not p.result[1]:
            continue
        key = p.result[0]
        alive = last_alive.get(key, 0)
        faulty = any(alive - 5 <= t <= p.start for t, _ in faults)
        if faulty and (healed is None or healed > p.start):
            continue  # faults may have delayed the expiry, and were still going on
        since = max(alive, healed) if faulty else alive
        due = since + TTL + ELECTION + SLACK
        if p.start > due:
            out.append({"anomaly": "an abandoned lease's key outlived TTL + election timeout",
                        "key": key, "read_at": round(p.start, 2), "due": round(due, 2)})
    return out
