"""A sorted set of byte strings in chunks (pure).

A plain sorted list costs O(n) per insert (a memmove of the whole pointer
array); with millions of keys that shows up on the write path.  Keys live in
chunks of at most ``2 * LOAD`` entries, with a list of each chunk's last key,
so insert and delete move at most one chunk and a range scan is a bisect plus
a walk.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Iterator

LOAD = 512


class SortedKeys:
    """Inserts are buffered unsorted and merged on the next read, so a burst
    of new keys (a write-heavy load) costs one sort instead of many inserts."""

    __slots__ = ("_chunks", "_maxes", "_len", "_new")

    def __init__(self, keys=()):
        self._chunks: list[list[bytes]] = []
        self._maxes: list[bytes] = []
        self._len = 0
        self._new: list[bytes] = []
        srt = sorted(set(keys))
        for i in range(0, len(srt), LOAD):
            chunk = srt[i:i + LOAD]
            self._chunks.append(chunk)
            self._maxes.append(chunk[-1])
        self._len = len(srt)

    def __len__(self) -> int:
        return self._len + len(self._new)

    def add(self, key: bytes) -> None:
        """Insert ``key``; the caller guarantees it is not present."""
        self._new.append(key)

    def _merge(self) -> None:
        new, self._new = self._new, []
        new.sort()
        if len(new) > 4 * LOAD and len(new) > self._len:
            merged = sorted(list(self) + new) if self._len else new
            self._chunks = [merged[i:i + LOAD] for i in range(0, len(merged), LOAD)]
            self._maxes = [c[-1] for c in self._chunks]
            self._len = len(merged)
            return
        for k in new:
            self._insert(k)

    def _insert(self, key: bytes) -> None:
        maxes = self._maxes
        if not maxes:
            self._chunks.append([key])
            maxes.append(key)
            self._len = 1
            return
        i = bisect_left(maxes, key)
        if i == len(maxes):
            i -= 1
            chunk = self._chunks[i]
            chunk.append(key)
            maxes[i] = key
        else:
            chunk = self._chunks[i]
            insort(chunk, key)
        self._len += 1
        if len(chunk) > 2 * LOAD:
            half = chunk[LOAD:]
            del chunk[LOAD:]
            self._chunks.insert(i + 1, half)
            maxes[i] = chunk[-1]
            maxes.insert(i + 1, half[-1])

    def remove(self, key: bytes) -> None:
        if self._new:
            self._merge()
        maxes = self._maxes
        i = bisect_left(maxes, key)
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        assert chunk[j] == key, "removing a key that is not present"
        del chunk[j]
        self._len -= 1
        if not chunk:
            del self._chunks[i]
            del maxes[i]
        elif j == len(chunk):
            maxes[i] = chunk[-1]

    def irange(self, start: bytes, end: bytes | None) -> Iterator[bytes]:
        """Keys k with start <= k < end (end None: no upper bound)."""
        if self._new:
            self._merge()
        maxes = self._maxes
        i = bisect_left(maxes, start)
        chunks = self._chunks
        n = len(chunks)
        if i >= n:
            return
        j = bisect_left(chunks[i], start)
        while i < n:
            chunk = chunks[i]
            if end is not None and maxes[i] >= end:
                stop = bisect_left(chunk, end)
                yield from chunk[j:stop]
                return
            yield from chunk[j:] if j else chunk
            i += 1
            j = 0

    def __iter__(self) -> Iterator[bytes]:
        if self._new:
            self._merge()
        for chunk in self._chunks:
            yield from chunk

    def __contains__(self, key: bytes) -> bool:
        if self._new:
            self._merge()
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return False
        chunk = self._chunks[i]
        j = bisect_right(chunk, key)
        return j > 0 and chunk[j - 1] == key
