"""The peer transport keeps redialling whatever a dial meets (in process,
loopback, an ephemeral port).  A member being SIGKILLed can accept a redial
on its dying listener and then drop it before answering the hello; that
once ended the dialling task for good (IncompleteReadError was not among
the errors it retried), so the new leader never reached the restarted
member again (CI: test_sigkill_leader_under_write_load, the restarted old
leader heard from nobody for 20 s)."""
from __future__ import annotations

import asyncio

from pyetcd.peer import transport as tr
from pyetcd.raft.types import Message, MessageType


class Host:
    def __init__(self):
        self.got: list[Message] = []
        self.unreachable = 0
        self.rtts: list = []
        self.arrived = asyncio.Event()

    def on_messages(self, msgs):
        self.got.extend(msgs)
        self.arrived.set()

    def on_unreachable(self, member_id):
        self.unreachable += 1

    def on_snapshot_status(self, member_id, ok):
        raise AssertionError("no snapshot is sent here")

    def is_removed(self, member_id):
        return False

    def member_list(self):
        return []

    def on_removed(self):
        raise AssertionError("nobody was removed")

    def snapshot_file(self):
        raise AssertionError("no snapshot is sent here")

    def on_rtt(self, member_id, seconds):
        self.rtts.append((member_id, seconds))


async def _scenario(hangups: int, mode: str):
    receiver = tr.Transport(2, 0xC1, Host())
    seen = {"n": 0}

    async def flaky(reader, writer):
        # the first ``hangups`` connections: read the hello (or not), then go away
        seen["n"] += 1
        if seen["n"] <= hangups:
            if mode == "after-hello":
                await tr.read_frame(reader)
            writer.transport.abort() if mode == "reset" else writer.close()
            return
        await receiver._accept(reader, writer)

    srv = await asyncio.start_server(flaky, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    dialler = tr.Transport(1, 0xC1, Host())
    dialler.add_peer(2, [f"http://127.0.0.1:{port}"])
    try:
        async with asyncio.timeout(15):
            while not dialler.is_active(2):
                await asyncio.sleep(0.01)
            dialler.send([Message(MessageType.HEARTBEAT, to=2, frm=1, term=3)])
            await receiver.host.arrived.wait()
        assert seen["n"] == hangups + 1
        assert [(m.type, m.frm, m.term) for m in receiver.host.got] == [
            (MessageType.HEARTBEAT, 1, 3)]
        assert not dialler.peers[2].task.done(), "the dialling task must live on"
        assert [m for m, _ in dialler.host.rtts] == [2], "one handshake completed"
    finally:
        await dialler.stop()
        await receiver.stop()
        srv.close()
        await srv.wait_closed()


def test_redials_after_a_listener_hangs_up_mid_handshake(monkeypatch):
    monkeypatch.setattr(tr, "BACKOFF_MAX", 0.05)
    asyncio.run(_scenario(3, "after-hello"))


def test_redials_after_a_listener_closes_at_once(monkeypatch):
    monkeypatch.setattr(tr, "BACKOFF_MAX", 0.05)
    asyncio.run(_scenario(2, "at-once"))


def test_redials_after_a_reset(monkeypatch):
    monkeypatch.setattr(tr, "BACKOFF_MAX", 0.05)
    asyncio.run(_scenario(2, "reset"))
