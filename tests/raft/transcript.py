"""A tiny interpreter for Raft transcript tests (tests/raft/testdata/*.txt).

A transcript is a sequence of commands, each followed by the trace it
prints::

    > add-nodes 3 pre-vote
    ...
    > campaign 1
    ...

Commands (ids are node ids):
  add-nodes N [pre-vote] [check-quorum]   bootstrap voters 1..N
  campaign ID | tick ID [N] | tick-election ID | tick-heartbeat ID
  propose ID DATA | read-index ID CTX | transfer-leader FROM TO
  conf-change ID (add|remove|learner) NODE   propose a single-step change
  add-empty-node ID                          a new member with an empty disk
  process-ready ID...     persist, print and queue the messages of each Ready
  deliver-msgs ID...      step every queued message addressed to ID
  drop-msgs [ID...]       drop queued messages (to ID, or all)
  stabilize               process-ready/deliver until nothing is left
  isolate ID | heal       cut ID off (messages dropped on delivery) / undo
  crash ID | restart ID   lose unpersisted state / start from the disk
  compact ID INDEX        snapshot the applied state at INDEX, compact the log
  status ID | raft-log ID | raft-state
Run ``PYETCD_REWRITE_TRANSCRIPTS=1 pytest tests/raft/test_transcripts.py``
(or ``python -m tests.raft.transcript --rewrite``) to regenerate the traces.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

from pyetcd.raft import (Config, ConfChange, ConfChangeType, EntryType, MemoryStorage, Message,
                         MessageType, ProposalDropped, RawNode, bootstrap, decode_conf_change)

TESTDATA = Path(__file__).parent / "testdata"
_CC = {"add": ConfChangeType.ADD_NODE, "remove": ConfChangeType.REMOVE_NODE,
       "learner": ConfChangeType.ADD_LEARNER_NODE}


def fmt_entry(e) -> str:
    if e.type == EntryType.CONF_CHANGE:
        cc = decode_conf_change(e.data)
        return f"{e.term}/{e.index} {cc.type.name} {cc.node_id}"
    return f"{e.term}/{e.index} {e.data.decode(errors='replace')!r}"


def fmt_msg(m: Message) -> str:
    parts = [f"{m.frm}->{m.to} {m.type.name} Term:{m.term}"]
    if m.type in (MessageType.APP, MessageType.VOTE, MessageType.PRE_VOTE, MessageType.APP_RESP,
                  MessageType.READ_INDEX_RESP):
        parts.append(f"Log:{m.log_term}/{m.index}")
    if m.commit:
        parts.append(f"Commit:{m.commit}")
    if m.reject:
        parts.append(f"Rejected (Hint: {m.reject_hint})")
    if m.context:
        parts.append(f"Ctx:{m.context.decode(errors='replace')}")
    if m.entries:
        parts.append("Entries:[" + ", ".join(fmt_entry(e) for e in m.entries) + "]")
    if m.snapshot is not None:
        md = m.snapshot.metadata
        parts.append(f"Snapshot: Index:{md.index} Term:{md.term} "
                     f"Voters:{list(md.conf_state.voters)} Learners:{list(md.conf_state.learners)}")
    return " ".join(parts)


class Env:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.storage: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RawNode | None] = {}
        self.opts: dict[int, dict] = {}
        self.applied: dict[int, int] = {}
        self.queue: list[Message] = []
        self.isolated: set[int] = set()

    def p(self, line: str) -> None:
        self.out.append(line)

    def run(self, cmd: str) -> str:
        self.out = []
        args = cmd.split()
        handler = getattr(self, "cmd_" + args[0].replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {args[0]!r}")
        try:
            handler(*args[1:])
        except ProposalDropped as e:
            self.p(f"ProposalDropped: {e}")
        return "\n".join(self.out)

    # -- setup ---------------------------------------------------------------------------
    def _start(self, id: int) -> None:
        o = self.opts[id]
        cfg = Config(id=id, election_tick=10, heartbeat_tick=1, rng=random.Random(id),
                     applied=self.applied.get(id, 0), **o)
        self.nodes[id] = RawNode(cfg, self.storage[id])

    def cmd_add_nodes(self, n, *flags) -> None:
        opts = {"pre_vote": "pre-vote" in flags, "check_quorum": "check-quorum" in flags}
        base = len(self.nodes)
        voters = list(range(base + 1, base + int(n) + 1))
        for id in voters:
            s = MemoryStorage()
            bootstrap(s, voters)
            self.storage[id], self.opts[id] = s, opts
            self.applied[id] = s.snapshot().metadata.index
            self._start(id)
            self.p(f"node {id}: voters={voters} term=1 commit=1")

    def cmd_add_empty_node(self, id) -> None:
        id = int(id)
        self.storage[id] = MemoryStorage()
        self.opts[id] = next(iter(self.opts.values()))
        self.applied[id] = 0
        self._start(id)
        self.p(f"node {id}: empty storage")

    # -- inputs ----------------------------------------------------------------------------
    def cmd_campaign(self, id) -> None:
        self.nodes[int(id)].campaign()

    def cmd_tick(self, id, n="1") -> None:
        for _ in range(int(n)):
            self.nodes[int(id)].tick()

    def cmd_tick_election(self, id) -> None:
        r = self.nodes[int(id)].raft
        for _ in range(r.randomized_election_timeout):
            self.nodes[int(id)].tick()

    def cmd_tick_heartbeat(self, id) -> None:
        r = self.nodes[int(id)].raft
        for _ in range(r.heartbeat_timeout):
            self.nodes[int(id)].tick()

    def cmd_propose(self, id, data) -> None:
        self.nodes[int(id)].propose(data.encode())

    def cmd_read_index(self, id, ctx) -> None:
        self.nodes[int(id)].read_index(ctx.encode())

    def cmd_transfer_leader(self, frm, to) -> None:
        self.nodes[int(frm)].transfer_leader(int(to))

    def cmd_conf_change(self, id, kind, node) -> None:
        self.nodes[int(id)].propose_conf_change(ConfChange(_CC[kind], int(node)))

    # -- the Ready loop ------------------------------------------------------------------
    def cmd_process_ready(self, *ids) -> None:
        for id in (int(i) for i in ids):
            self._process(id)

    def _process(self, id: int) -> bool:
        node = self.nodes.get(id)
        if node is None or not node.has_ready():
            return False
        rd = node.ready()
        s = self.storage[id]
        self.p(f"{id} handling Ready:")
        if rd.soft_state is not None:
            self.p(f"  Lead:{rd.soft_state.lead} State:{rd.soft_state.raft_state.name}")
        if rd.hard_state is not None:
            hs = rd.hard_state
            self.p(f"  HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}")
        if rd.snapshot is not None:
            s.apply_snapshot(rd.snapshot)
            self.applied[id] = rd.snapshot.metadata.index
            self.p(f"  Snapshot Index:{rd.snapshot.metadata.index} Term:{rd.snapshot.metadata.term}")
        if rd.entries:
            s.append(rd.entries)
            self.p("  Entries: " + ", ".join(fmt_entry(e) for e in rd.entries))
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        for m in rd.messages:
            self.p("  send " + fmt_msg(m))
            self.queue.append(m)
        for e in rd.committed_entries:
            self.p("  apply " + fmt_entry(e))
            if e.type == EntryType.CONF_CHANGE:
                cs = node.apply_conf_change(decode_conf_change(e.data))
                self.p(f"  conf state: voters={list(cs.voters)} learners={list(cs.learners)}")
            self.applied[id] = e.index
        for rs in rd.read_states:
            self.p(f"  read state: Index:{rs.index} Ctx:{rs.request_ctx.decode()}")
        node.advance(rd)
        return True

    def cmd_deliver_msgs(self, *ids) -> None:
        for id in (int(i) for i in ids):
            self._deliver_to(id)

    def _deliver_to(self, id: int) -> bool:
        msgs = [m for m in self.queue if m.to == id]
        self.queue = [m for m in self.queue if m.to != id]
        for m in msgs:
            if id in self.isolated or m.frm in self.isolated or self.nodes.get(id) is None:
                self.p(f"  dropped {fmt_msg(m)}")
                continue
            self.p(f"  {id} <- {fmt_msg(m)}")
            self.nodes[id].step(m)
        return bool(msgs)

    def cmd_drop_msgs(self, *ids) -> None:
        want = {int(i) for i in ids}
        for m in [m for m in self.queue if not want or m.to in want]:
            self.p(f"  dropped {fmt_msg(m)}")
        self.queue = [m for m in self.queue if want and m.to not in want]

    def cmd_stabilize(self) -> None:
        for _ in range(1000):
            busy = False
            for id in sorted(self.nodes):
                busy |= self._process(id)
            for id in sorted({m.to for m in self.queue}):
                busy |= self._deliver_to(id)
            if not busy:
                return
        raise AssertionError("stabilize did not converge")

    # -- faults --------------------------------------------------------------------------------
    def cmd_isolate(self, id) -> None:
        self.isolated.add(int(id))

    def cmd_heal(self) -> None:
        self.isolated.clear()

    def cmd_crash(self, id) -> None:
        self.nodes[int(id)] = None
        self.p(f"node {id} crashed")

    def cmd_restart(self, id) -> None:
        id = int(id)
        self.applied[id] = self.storage[id].snapshot().metadata.index
        self._start(id)
        r = self.nodes[id].raft
        self.p(f"node {id} restarted: term={r.term} commit={r.raft_log.committed} "
               f"last={r.raft_log.last_index()}")

    def cmd_compact(self, id, index) -> None:
        id, index = int(id), int(index)
        s = self.storage[id]
        cs = self.nodes[id].raft.trk.conf_state()
        s.create_snapshot(index, cs, b"state@%d" % index)
        s.compact(index)
        self.p(f"node {id}: snapshot at {index}, first index {s.first_index()}")

    # -- introspection ---------------------------------------------------------------------
    def cmd_status(self, id) -> None:
        st = self.nodes[int(id)].status()
        self.p(f"{st.id} {st.soft_state.raft_state.name} term={st.hard_state.term} "
               f"lead={st.soft_state.lead} commit={st.hard_state.commit} applied={st.applied}")
        for pid, pr in sorted(st.progress.items()):
            self.p(f"  {pid}: {pr.state} match={pr.match} next={pr.next}"
                   + (" learner" if pr.is_learner else ""))

    def cmd_raft_log(self, id) -> None:
        log = self.nodes[int(id)].raft.raft_log
        ents = log.all_entries()
        self.p(f"first={log.first_index()} last={log.last_index()} committed={log.committed}")
        for e in ents:
            self.p("  " + fmt_entry(e))

    def cmd_raft_state(self) -> None:
        for id in sorted(self.nodes):
            n = self.nodes[id]
            if n is None:
                self.p(f"{id}: down")
            else:
                r = n.raft
                self.p(f"{id}: {r.state.name} term={r.term} lead={r.lead}"
                       + (" (learner)" if r.is_learner else ""))


def parse(text: str) -> list[tuple[str, str]]:
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("> "):
            blocks.append((line[2:].strip(), []))
        elif blocks:
            blocks[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"text before the first command: {line!r}")
    return [(cmd, "\n".join(out).rstrip("\n")) for cmd, out in blocks]


def header(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("> "):
            break
        lines.append(line)
    return "\n".join(lines).rstrip("\n")


def render(path: Path) -> tuple[str, str]:
    """(expected text, actual text) for one transcript file."""
    text = path.read_text()
    env = Env()
    out = [header(text)] if header(text) else []
    for cmd, _ in parse(text):
        got = env.run(cmd)
        out.append(f"> {cmd}\n{got}".rstrip("\n"))
    return text, "\n\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    for path in sorted(TESTDATA.glob("*.txt")):
        want, got = render(path)
        if "--rewrite" in argv:
            path.write_text(got)
            print(f"rewrote {path.name}")
        elif want != got:
            print(f"DIFFERS {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
