"""The watch servicer's shared encoding (one encoding of a put's header and
events for all its watchers, each message that plus its watch_id) decodes
to exactly the WatchResponse built field by field, and the bytes go out as
they are (in process, no server)."""
from __future__ import annotations

from pyetcd.api.watch import WatchServicer, _StreamState, fill_header
from pyetcd.mvcc.watchable_store import WatchResponse
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.mvccpb.kv_pb2 import Event, KeyValue


class Member:
    def __init__(self):
        self.term = 7
        self.cfg = type("Cfg", (), {"experimental_watch_progress_notify_interval": ""})()
        self.max_request_bytes = 1 << 20

    def header(self, h) -> None:
        h.cluster_id, h.member_id, h.raft_term, h.revision = 0xC1, 0xA1, self.term, 99


def _events():
    return [Event(type=Event.PUT, kv=KeyValue(key=b"/k", value=b"v", create_revision=4,
                                              mod_revision=5, version=2)),
            Event(type=Event.DELETE, kv=KeyValue(key=b"/j", mod_revision=5))]


def _built(member, item) -> pb.WatchResponse:
    resp = pb.WatchResponse(watch_id=item.watch_id)
    fill_header(member, resp.header, item.revision)
    resp.events.extend(item.events)
    return resp


def test_every_watcher_gets_the_message_built_field_by_field():
    member = Member()
    ws = WatchServicer(member)
    st = _StreamState()
    events = _events()
    for wid in (0, 1, 127, 128, 300, 2**40):
        item = WatchResponse(wid, events, 5)
        (out,) = ws._responses(item, st)
        assert isinstance(out, bytes)
        assert pb.WatchResponse.FromString(out) == _built(member, item), wid
    assert len(ws._shared[1]) == 1, "one encoding served every watcher of the put"


def test_a_new_term_or_other_events_are_encoded_afresh():
    member = Member()
    ws = WatchServicer(member)
    st = _StreamState()
    events = _events()
    ws._responses(WatchResponse(3, events, 5), st)
    member.term = 8
    (out,) = ws._responses(WatchResponse(3, events, 5), st)
    assert pb.WatchResponse.FromString(out).header.raft_term == 8
    other = events[:1]
    (out,) = ws._responses(WatchResponse(4, other, 5), st)
    assert list(pb.WatchResponse.FromString(out).events) == other


def test_prev_kv_fragment_and_compaction_still_take_the_message_path():
    member = Member()
    member.revision_kv = lambda key, rev: KeyValue(key=key, value=b"old", mod_revision=rev)
    ws = WatchServicer(member)
    st = _StreamState()
    st.prev_kv.add(1)
    st.fragment.add(2)
    events = _events()
    (a,) = ws._responses(WatchResponse(1, events, 5), st)
    assert isinstance(a, pb.WatchResponse) and a.events[0].prev_kv.value == b"old"
    (b,) = ws._responses(WatchResponse(2, events, 5), st)
    assert isinstance(b, pb.WatchResponse)
    (c,) = ws._responses(WatchResponse(3, [], 5, compact_revision=4), st)
    assert isinstance(c, pb.WatchResponse) and c.canceled and c.compact_revision == 4


def test_the_serializer_passes_bytes_through():
    from pyetcd.api.common import _bytes_or
    ser = _bytes_or(pb.WatchResponse.SerializeToString)
    assert ser(b"\x10\x05") == b"\x10\x05"
    assert ser(pb.WatchResponse(watch_id=5)) == b"\x10\x05"
