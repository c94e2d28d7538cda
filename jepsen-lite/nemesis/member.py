"""Membership faults, through the Cluster API as an operator does them:

- ``remove-add``: remove a follower, wipe its data dir, add it back with
  the same peer URL and start it empty (``--initial-cluster-state
  existing``: the seed's flow);
- ``learner``: the same, but it comes back as a learner and is promoted
  once it has caught up;
- ``transfer``: a storm of leader transfers (MoveLeader to random voters).
"""
from __future__ import annotations

import random
import time

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from ..client import Indeterminate, Refused
from .base import Nemesis

PROMOTE_TIMEOUT = 20.0


def _call(run, method: str, request, member=None, timeout: float = 5.0):
    """A Cluster/Maintenance call on any member that answers."""
    last = None
    for m in ([member] if member else run.cluster.members):
        if not m.running or m.paused:
            continue
        c = run.cluster.client(m, timeout)
        try:
            svc = c.cluster if method.startswith("Member") else c.maintenance
            return c.call(getattr(svc, method), request, True)
        except (Refused, Indeterminate) as exc:
            last = exc
        finally:
            c.close()
    raise Indeterminate(f"{method}: no member answered ({last})")


class Membership(Nemesis):
    name = "member"
    modes = ("remove-add", "learner", "transfer")

    def __init__(self):
        self.pending = None  # (member, learner?) being re-added

    def start(self, run, rng: random.Random) -> dict:
        mode = rng.choice(self.modes)
        if mode == "transfer":
            return {"mode": mode, "moves": self._transfers(run, rng)}
        lead = run.cluster.leader()
        followers = [m for m in run.cluster.members if m is not lead and m.running and m.id]
        if not followers:
            return {"mode": mode, "skipped": "no running follower"}
        m = rng.choice(followers)
        _call(run, "MemberRemove", pb.MemberRemoveRequest(ID=m.id), lead)
        run.cluster.kill(m)
        run.cluster.wipe(m)
        resp = _call(run, "MemberAdd", pb.MemberAddRequest(peerURLs=[m.peer_url],
                                                           isLearner=mode == "learner"), lead)
        m.id = resp.member.ID
        run.cluster.rejoin_args(m, list(resp.members))
        run.cluster.restart(m, wait=False)
        self.pending = (m, mode == "learner")
        return {"mode": mode, "member": m.name, "new_id": f"{m.id:x}"}

    def _transfers(self, run, rng: random.Random) -> list:
        moves = []
        for _ in range(rng.randint(2, 5)):
            lead = run.cluster.leader()
            if lead is None:
                break
            to = rng.choice([m for m in run.cluster.members if m is not lead])
            try:
                _call(run, "MoveLeader", pb.MoveLeaderRequest(targetID=to.id), lead)
                moves.append(f"{lead.name}->{to.name}")
            except (Refused, Indeterminate) as exc:
                moves.append(f"{lead.name}->{to.name} failed: {exc}")
            time.sleep(0.3)
        return moves

    def end(self, run) -> dict:
        if self.pending is None:
            return {}
        m, learner = self.pending
        self.pending = None
        out = {"member": m.name, "running": run.cluster.restart(m)}
        if learner:
            out["promoted"] = self._promote(run, m)
        return out

    def _promote(self, run, m) -> str:
        deadline = time.monotonic() + PROMOTE_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            try:
                _call(run, "MemberPromote", pb.MemberPromoteRequest(ID=m.id))
                return "yes"
            except (Refused, Indeterminate) as exc:
                last = str(exc)
                time.sleep(0.5)
        return f"no: {last}"

    def heal(self, run) -> None:
        self.end(run)
