"""The auto compactor (etcd's v3compactor), driven by a fake clock."""
from __future__ import annotations

import asyncio

import pytest

from pyetcd import errors
from pyetcd.server.compactor import Compactor, parse_retention
from pyetcd.util.duration import parse_go_duration


class _Raft:
    is_leader = True


class _KV:
    current_rev = 1


class FakeServer:
    def __init__(self):
        self.kv = _KV()
        self.raft = _Raft()
        self.stopped = False
        self.proposed = []
        self.compacted = 0

    async def compact(self, req):
        rev = req.revision
        self.proposed.append(rev)
        if rev <= self.compacted:
            raise errors.COMPACTED()
        self.compacted = rev


def _drive(mode, retention, steps, on_step, **kw):
    """Run the compactor for `steps` sleeps; the fake clock advances by each sleep."""
    server = FakeServer()
    now = [0.0]
    count = [0]

    async def sleep(dt):
        now[0] += dt
        count[0] += 1
        on_step(server, now[0])
        if count[0] >= steps:
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    async def main():
        c = Compactor(server, mode, retention, clock=lambda: now[0], sleep=sleep, **kw)
        c.start()
        try:
            await c.task
        except asyncio.CancelledError:
            pass
        return c

    c = asyncio.run(main())
    return server, c


def test_parse_retention():
    assert parse_retention("periodic", "1") == 3600
    assert parse_retention("periodic", "30m") == 1800
    assert parse_retention("periodic", "1h30m") == 5400
    assert parse_retention("revision", "1000") == 1000
    assert parse_retention("periodic", "0") == 0
    assert parse_go_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_go_duration("5x")


def test_periodic_compacts_revision_of_one_period_ago():
    # retention 10 s: sample every 1 s, compact after 10 s to the rev seen 10 s before
    def step(server, now):
        server.kv.current_rev = 100 + int(now * 10)  # 10 revisions per second

    server, c = _drive("periodic", 10.0, 35, step)
    assert c.compactions, server.proposed
    first = c.compactions[0]
    assert first == 100 + 10 * 0 or first <= 110  # the revision of (about) 10 s before
    # later compactions trail the current revision by about one period
    assert all(b > a for a, b in zip(c.compactions, c.compactions[1:]))
    assert server.kv.current_rev - c.compactions[-1] >= 90


def test_periodic_paused_on_followers():
    def step(server, now):
        server.kv.current_rev = 100 + int(now)
        server.raft.is_leader = False

    server, c = _drive("periodic", 5.0, 30, step)
    assert server.proposed == []


def test_revision_mode_keeps_retention():
    def step(server, now):
        server.kv.current_rev += 700

    server, c = _drive("revision", 1000, 5, step, revision_interval=300)
    # sleeps: rev 701 (-> <0, skip), 1401 -> 401, 2101 -> 1101, 2801 -> 1801
    assert c.compactions == [401, 1101, 1801]


@pytest.mark.conformance
@pytest.mark.parametrize("kind", ["pyetcd", "etcd"])
def test_periodic_auto_compaction_process(servers, etcdctl35, kind):
    """--auto-compaction-mode periodic --auto-compaction-retention 1s: the
    leader compacts the revision of one period ago (pyetcd and real etcd)."""
    import time

    from pyetcd.client import Client, ClientError
    s = servers(kind, extra=["--auto-compaction-mode", "periodic",
                             "--auto-compaction-retention", "1s"]).start()
    with Client(s.endpoint) as c:
        for i in range(5):
            c.put(b"k", b"v%d" % i)
        deadline = time.monotonic() + 8
        compacted = False
        while time.monotonic() < deadline and not compacted:
            c.put(b"tick", b"x")
            try:
                c.get(b"k", revision=2)
            except ClientError as exc:
                assert exc.message == "etcdserver: mvcc: required revision has been compacted"
                compacted = True
            time.sleep(0.2)
        assert compacted
