"""The pure WAL record codec: round trips, torn tails, bit flips (hypothesis)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyetcd.raft.types import Entry, EntryType, HardState
from pyetcd.storage import walcodec as codec

u64 = st.integers(0, 2**64 - 1)
entries = st.builds(Entry, u64, u64, st.sampled_from(list(EntryType)),
                    st.binary(max_size=200))
hard_states = st.builds(HardState, u64, u64, u64)
records = st.one_of(
    st.tuples(st.just(codec.ENTRY), entries),
    st.tuples(st.just(codec.HARD_STATE), hard_states),
    st.tuples(st.just(codec.SNAPSHOT), st.tuples(u64, u64)),
    st.tuples(st.just(codec.METADATA), st.binary(max_size=64)),
)


def _payload(kind, value):
    if kind == codec.ENTRY:
        return codec.encode_entry(value)
    if kind == codec.HARD_STATE:
        return codec.encode_hard_state(value)
    if kind == codec.SNAPSHOT:
        return codec.encode_snapshot_marker(*value)
    return value


def encode(recs, crc0=0x1234):
    """A segment as the WAL writes it: a CRC record, then ``recs``; frame offsets."""
    buf, crc = codec.encode_record(codec.CRC, b"", crc0)
    bounds = [(0, len(buf))]
    for kind, value in recs:
        frame, crc = codec.encode_record(kind, _payload(kind, value), crc)
        bounds.append((len(buf), len(buf) + len(frame)))
        buf += frame
    return bytes(buf), bounds, crc


def expected(recs, crc0=0x1234):
    return [(codec.CRC, crc0)] + list(recs)


@given(st.lists(records, max_size=20))
def test_round_trip(recs):
    buf, bounds, crc = encode(recs)
    scan = codec.decode_segment(buf)
    assert scan.error is None
    assert scan.records == expected(recs)
    assert scan.end == len(buf) and scan.crc == crc
    assert all(e - s > 0 and (e - s) % 8 == 0 for s, e in bounds)


@given(st.lists(entries, max_size=20), st.one_of(st.none(), hard_states), u64)
def test_encode_batch_matches_single_records(ents, hs, crc0):
    crc0 &= 0xFFFFFFFF
    recs = [(codec.ENTRY, e) for e in ents] + ([(codec.HARD_STATE, hs)] if hs else [])
    single, _, crc = encode(recs, crc0)
    head, c = codec.encode_record(codec.CRC, b"", crc0)
    batch, crc2 = codec.encode_batch(hs, ents, c)
    assert bytes(head + batch) == single and crc2 == crc


@given(st.lists(records, min_size=1, max_size=12), st.data(), st.booleans())
def test_truncated_tail_is_torn_and_keeps_whole_records(recs, data, zero_fill):
    """A write cut short (file shorter, or zeros where bytes were never written)."""
    buf, bounds, _ = encode(recs)
    cut = data.draw(st.integers(0, len(buf)))
    damaged = buf[:cut] + (bytes(len(buf) - cut + 64) if zero_fill else b"")
    scan = codec.decode_segment(damaged)
    whole = sum(1 for s, e in bounds if e <= cut)
    assert scan.records == expected(recs)[:whole]
    assert scan.end == (bounds[whole - 1][1] if whole else 0)
    assert scan.error is None or scan.error.torn
    if cut < len(buf) and not zero_fill and cut != scan.end:
        assert scan.error is not None and scan.error.offset == scan.end


@given(st.lists(records, min_size=1, max_size=12), st.data(), st.booleans())
def test_bit_flip_is_detected_at_its_frame(recs, data, zero_tail):
    """Any single flipped bit inside the written records is corruption, never torn."""
    buf, bounds, _ = encode(recs)
    if zero_tail:
        buf += bytes(1024)  # preallocated space after the last record
    written = bounds[-1][1]
    pos = data.draw(st.integers(0, written - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(buf)
    damaged[pos] ^= 1 << bit
    scan = codec.decode_segment(bytes(damaged))
    k = next(i for i, (s, e) in enumerate(bounds) if s <= pos < e)
    assert scan.error is not None, (pos, bit)
    assert not scan.error.torn
    assert scan.error.offset == bounds[k][0]
    assert scan.records == expected(recs)[:k]


@given(st.lists(records, min_size=1, max_size=8), st.data())
def test_bit_flip_in_preallocated_tail_is_torn(recs, data):
    buf, bounds, _ = encode(recs)
    buf = bytearray(buf + bytes(600))
    pos = data.draw(st.integers(bounds[-1][1], len(buf) - 1))
    buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    scan = codec.decode_segment(bytes(buf))
    assert scan.records == expected(recs)
    assert scan.error is not None and scan.error.torn and scan.error.offset == bounds[-1][1]


def test_zero_tail_is_end_of_data():
    buf, bounds, crc = encode([(codec.METADATA, b"m")])
    scan = codec.decode_segment(buf + bytes(4096))
    assert scan.error is None and scan.end == len(buf) and scan.crc == crc


def test_crc_chain_mismatch_between_segments():
    a, _, crc = encode([(codec.METADATA, b"m")])
    b, _, _ = encode([(codec.METADATA, b"m")], crc0=crc ^ 1)
    scan = codec.decode_segment(b, crc)
    assert scan.error is not None and not scan.error.torn
    assert "chain" in scan.error.reason and scan.error.offset == 0
    assert codec.decode_segment(b, 0).error is None  # 0: chain unknown, take it


@settings(max_examples=30)
@given(st.lists(entries, min_size=1, max_size=5))
def test_torn_sector_inside_large_last_frame(ents):
    """Out-of-order sector writes: a whole zero sector inside the last frame is torn."""
    big = Entry(1, 99, EntryType.NORMAL, bytes(range(256)) * 8)
    recs = [(codec.ENTRY, e) for e in ents] + [(codec.ENTRY, big)]
    buf, bounds, _ = encode(recs)
    s, e = bounds[-1]
    sector = (s + 16 + 511) // 512 * 512
    damaged = bytearray(buf)
    damaged[sector:sector + 512] = bytes(512)
    scan = codec.decode_segment(bytes(damaged))
    assert scan.error is not None and scan.error.torn and scan.error.offset == s
    assert scan.records == expected(recs)[:-1]
