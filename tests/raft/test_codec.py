"""pyetcd.raft.codec: exact round trips through the protobuf schema."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pyetcd.raft import (ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState,
                         Message, MessageType, Snapshot, SnapshotMetadata,
                         decode_conf_change, encode_conf_change)
from pyetcd.raft import codec

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small = st.integers(min_value=0, max_value=2**40)
entries = st.builds(Entry, small, small, st.sampled_from(list(EntryType)), st.binary(max_size=40))
conf_states = st.builds(ConfState, st.lists(u64, max_size=5).map(tuple),
                        st.lists(u64, max_size=3).map(tuple))
snapshots = st.builds(Snapshot, st.binary(max_size=50),
                      st.builds(SnapshotMetadata, conf_states, small, small))
messages = st.builds(Message, st.sampled_from(list(MessageType)), u64, u64, small, small, small,
                     st.lists(entries, max_size=4).map(lambda l: l or ()), small,
                     st.none() | snapshots, st.booleans(), small, st.binary(max_size=20))


@given(messages)
def test_message_round_trip(m):
    assert codec.decode_message(codec.encode_message(m)) == m


@given(entries)
def test_entry_round_trip(e):
    assert codec.decode_entry(codec.encode_entry(e)) == e


@given(st.builds(HardState, small, u64, small))
def test_hard_state_round_trip(hs):
    assert codec.decode_hard_state(codec.encode_hard_state(hs)) == hs


@given(snapshots)
def test_snapshot_round_trip(s):
    assert codec.decode_snapshot(codec.encode_snapshot(s)) == s


@given(st.builds(ConfChange, st.sampled_from(list(ConfChangeType)), u64, st.binary(max_size=20)))
def test_conf_change_round_trips(cc):
    assert decode_conf_change(encode_conf_change(cc)) == cc
    assert codec.conf_change_from_pb(codec.conf_change_to_pb(cc)) == cc


def test_wire_field_names():
    m = Message(MessageType.APP, to=2, frm=1, term=3)
    p = codec.message_to_pb(m)
    assert getattr(p, "from") == 1 and p.to == 2 and p.type == 3
    assert not p.HasField("snapshot")
