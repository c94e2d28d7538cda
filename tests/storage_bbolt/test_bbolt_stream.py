"""The two-pass (streaming) bbolt writer: byte for byte the file the
in-memory writer makes, and a refusal when the data moves between passes."""
from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyetcd.storage.bbolt import BboltError, BboltReader, write_bbolt

_items = st.dictionaries(st.binary(min_size=1, max_size=40), st.binary(max_size=3000), max_size=60)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from([b"key", b"meta", b"lease", b"auth"]), _items, min_size=1))
def test_streamed_equals_in_memory(data):
    sorted_data = {name: sorted(items.items()) for name, items in data.items()}
    mem = io.BytesIO()
    write_bbolt(mem, {n: list(v) for n, v in sorted_data.items()})
    passes = []

    def reopen(name):
        passes.append(name)
        return iter(sorted_data[name])
    streamed = io.BytesIO()
    write_bbolt(streamed, {n: iter(v) for n, v in sorted_data.items()}, reopen=reopen)
    assert streamed.getvalue() == mem.getvalue()
    with BboltReader(streamed.getvalue()) as r:
        for name, items in sorted_data.items():
            assert list(r.items(name)) == items


def test_streamed_refuses_data_that_changed():
    items = [(b"k%05d" % i, b"v" * 100) for i in range(200)]
    changed = items[:100] + [(b"k00100", b"w" * 101)] + items[101:]
    with pytest.raises(BboltError, match="changed between the two passes"):
        write_bbolt(io.BytesIO(), {b"key": iter(items)}, reopen=lambda name: iter(changed))
    with pytest.raises(BboltError, match="changed between the two passes"):
        write_bbolt(io.BytesIO(), {b"key": iter(items)}, reopen=lambda name: iter(items + [(b"z", b"")]))


def test_streamed_needs_sorted_input():
    with pytest.raises(BboltError, match="out of order"):
        write_bbolt(io.BytesIO(), {b"key": iter([(b"b", b""), (b"a", b"")])},
                    reopen=lambda name: iter([]))
