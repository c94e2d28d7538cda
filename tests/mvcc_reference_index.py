"""A reference model of the key index: etcd's in-memory keyIndex/treeIndex
(key -> generations of revisions), which pyetcd's index in the backend
(pyetcd/mvcc/index.py) must agree with; tests compare them.

Each key's history is a list of *generations*.  A generation starts when the
key is created and ends with a tombstone (its last revision); after a
tombstone an empty generation is appended.  ``version`` counts the puts of a
generation.  The rules (etcd's ``key_index.go``):

- ``get(at)`` finds the generation alive at main revision ``at`` and the
  newest revision in it at or below ``at``; a key deleted at or before ``at``
  is not found.
- ``compact(at)`` keeps, per key, the newest revision at or below ``at``
  (dropping it too when it is a tombstone) and everything after; a key left
  with nothing is removed from the index.

Revisions are ints ``main << 32 | sub`` (see revision.py).
"""
from __future__ import annotations

from pyetcd.mvcc.revision import SUB_BITS


class Generation:
    __slots__ = ("ver", "created", "revs")

    def __init__(self, ver: int = 0, created: int = 0, revs=None):
        self.ver = ver
        self.created = created
        self.revs: list[int] = revs if revs is not None else []

    def __repr__(self) -> str:
        return f"Generation(ver={self.ver}, created={self.created}, revs={self.revs})"


def _upper(at_main: int) -> int:
    """Smallest revision int whose main is greater than ``at_main``."""
    return (at_main + 1) << SUB_BITS


class KeyIndex:
    __slots__ = ("key", "modified", "generations")

    def __init__(self, key: bytes):
        self.key = key
        self.modified = 0
        self.generations: list[Generation] = [Generation()]

    def put(self, r: int) -> None:
        assert r > self.modified, "revision must increase"
        g = self.generations[-1]
        if not g.revs:
            g.created = r
        g.revs.append(r)
        g.ver += 1
        self.modified = r

    def tombstone(self, r: int) -> None:
        """Record a delete at ``r`` and end the current generation."""
        assert self.generations[-1].revs, "tombstone of a deleted key"
        self.put(r)
        self.generations.append(Generation())

    def is_empty(self) -> bool:
        return len(self.generations) == 1 and not self.generations[0].revs

    def alive(self) -> bool:
        return bool(self.generations[-1].revs)

    def _find_generation(self, at_main: int) -> Generation | None:
        gens = self.generations
        upper = _upper(at_main)
        last = len(gens) - 1
        for i in range(last, -1, -1):
            g = gens[i]
            if not g.revs:
                continue
            if i != last and g.revs[-1] < upper:  # tombstone at or before at_main
                return None
            if g.revs[0] < upper:
                return g
        return None

    def get(self, at_main: int):
        """(modified, created, version) at main revision ``at_main``, or None."""
        g = self._find_generation(at_main)
        if g is None:
            return None
        revs = g.revs
        upper = _upper(at_main)
        n = len(revs) - 1
        while n >= 0 and revs[n] >= upper:
            n -= 1
        if n < 0:
            return None
        return revs[n], g.created, g.ver - (len(revs) - n - 1)

    def since(self, main: int) -> list[int]:
        """Revisions with main >= ``main``, one per main revision (the last)."""
        out: list[int] = []
        low = main << SUB_BITS
        last_main = -1
        for g in self.generations:
            for r in g.revs:
                if r < low:
                    continue
                m = r >> SUB_BITS
                if m == last_main:
                    out[-1] = r
                else:
                    out.append(r)
                    last_main = m
        return out

    def compact(self, at_main: int, keep: set[int]) -> None:
        gens = self.generations
        upper = _upper(at_main)
        gi = 0
        # the first generation that contains at_main or was created after it
        # (one whose tombstone is exactly at at_main counts: see below)
        low = at_main << SUB_BITS
        while gi < len(gens) - 1:
            g = gens[gi]
            if g.revs[-1] >= low:
                break
            gi += 1
        g = gens[gi]
        idx = -1
        for j in range(len(g.revs) - 1, -1, -1):
            if g.revs[j] < upper:
                keep.add(g.revs[j])
                idx = j
                break
        if g.revs:
            if idx != -1:
                del g.revs[:idx]
            if len(g.revs) == 1 and gi != len(gens) - 1 and g.revs[0] >> SUB_BITS != at_main:
                # a lone tombstone leaves the index and the backend, unless it
                # is at the compaction revision itself: a watch from that
                # revision must still see the delete (etcd #18089, fixed as in #18274)
                keep.discard(g.revs[0])
                gi += 1
        if gi:
            del gens[:gi]

    def keep(self, at_main: int, keep: set[int]) -> None:
        """Like compact but without changing the index (for hashing)."""
        gens = self.generations
        upper = _upper(at_main)
        gi = 0
        while gi < len(gens) - 1 and gens[gi].revs[-1] < upper:
            gi += 1
        g = gens[gi]
        for j in range(len(g.revs) - 1, -1, -1):
            if g.revs[j] < upper:
                if not (j == len(g.revs) - 1 and gi != len(gens) - 1):
                    keep.add(g.revs[j])
                break


class TreeIndex:
    """All keys' KeyIndex objects, ordered by key."""

    __slots__ = ("_map",)

    def __init__(self):
        self._map: dict[bytes, KeyIndex] = {}

    def __len__(self) -> int:
        return len(self._map)

    def key_index(self, key: bytes) -> KeyIndex | None:
        return self._map.get(key)

    def put(self, key: bytes, r: int) -> None:
        ki = self._map.get(key)
        if ki is None:
            ki = KeyIndex(key)
            self._map[key] = ki
        ki.put(r)

    def tombstone(self, key: bytes, r: int) -> bool:
        ki = self._map.get(key)
        if ki is None or not ki.alive():
            return False
        ki.tombstone(r)
        return True

    def restore(self, key: bytes, r: int, tombstone: bool, created_main: int = 0,
                version: int = 0) -> None:
        """Replay one key-bucket record in revision order (start-up).  The
        first record seen of a key may follow a compaction that removed its
        earlier revisions, so its generation is rebuilt from the record's
        create revision and version, as etcd's keyIndex.restore does."""
        ki = self._map.get(key)
        if ki is None:
            if tombstone:
                return
            ki = KeyIndex(key)
            self._map[key] = ki
            g = ki.generations[-1]
            g.created = created_main << SUB_BITS
            g.ver = version
            g.revs.append(r)
            ki.modified = r
            return
        if tombstone:
            if ki.alive():
                ki.tombstone(r)
        else:
            ki.put(r)

    def get(self, key: bytes, at_main: int):
        ki = self._map.get(key)
        if ki is None:
            return None
        return ki.get(at_main)

    def visit(self, key: bytes, end: bytes | None):
        """KeyIndex objects of keys in [key, end); end None: just ``key``;
        end b"": every key >= ``key``."""
        if end is None:
            ki = self._map.get(key)
            if ki is not None:
                yield ki
            return
        m = self._map
        for k in sorted(m):
            if k >= key and (not end or k < end):
                yield m[k]

    def revisions(self, key: bytes, end: bytes | None, at_main: int, limit: int):
        """([(key, revision)...] up to limit (0: all), total count)."""
        out = []
        total = 0
        for ki in self.visit(key, end):
            got = ki.get(at_main)
            if got is None:
                continue
            if limit <= 0 or len(out) < limit:
                out.append((ki.key, got[0]))
            total += 1
        return out, total

    def count_revisions(self, key: bytes, end: bytes | None, at_main: int) -> int:
        total = 0
        for ki in self.visit(key, end):
            if ki.get(at_main) is not None:
                total += 1
        return total

    def compact(self, at_main: int) -> set[int]:
        keep: set[int] = set()
        empty = []
        for key, ki in self._map.items():
            ki.compact(at_main, keep)
            if ki.is_empty():
                empty.append(key)
        for key in empty:
            del self._map[key]
        return keep

    def keep(self, at_main: int) -> set[int]:
        keep: set[int] = set()
        for ki in self._map.values():
            ki.keep(at_main, keep)
        return keep
