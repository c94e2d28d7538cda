"""The watchable store: watchers over the KV store, in etcd's three groups.

- **synced** watchers are caught up with the store: every write transaction's
  events reach them from the KV store's listener (:meth:`WatchableStore.notify`),
  all events of one revision in one response.
- **unsynced** watchers still have history to read (a start revision in the
  past, or they fell behind): :meth:`sync_watchers` reads the ``key`` bucket
  from their lowest ``min_rev`` up to the current revision, in batches that
  never split a revision, and hands each watcher its events; a watcher that
  reaches the current revision moves to synced.
- **victims**: a send that finds the stream's queue full does not block the
  writer; the watcher leaves its group with the batch it could not take, and
  :meth:`move_victims` retries it later, then puts it back in unsynced (or
  synced) from the revision after that batch.  So a slow consumer costs the
  write path nothing, and it never loses or repeats an event.

Rules (etcd's ``mvcc/watchable_store.go``, ``watcher_group.go``, ``watcher.go``):
- a watcher with start revision 0 or one above the current revision is synced
  at once (``min_rev`` = max(current + 1, start)); a future start waits;
- a watcher whose ``min_rev`` is below the compaction revision gets one
  response with ``compact_revision`` set and is dropped from every group;
- a catch-up batch carries at most :data:`WATCH_BATCH_MAX_REVS` revisions per
  watcher; the rest follows in the next round;
- progress (an empty response with the current revision) is only sent when
  every watcher asked about is synced and has reached its start revision.

Everything here runs on one thread (the event loop that applies entries); the
store does no waiting itself: the owner calls :meth:`sync_watchers` and
:meth:`move_victims` (pyetcd.api.watch drives them on timers, tests call them
directly), and is told through ``on_work`` when there is something to do.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Iterable

from pyetcd.pb.mvccpb.kv_pb2 import Event, KeyValue

from . import revision as R

CHAN_BUF_LEN = 128          # responses a stream may hold before its watchers become victims
MAX_WATCHERS_PER_SYNC = 512
WATCH_BATCH_MAX_REVS = 1000
SYNC_READ_LIMIT = 10000     # key-bucket items read per sync round (whole revisions only)

PUT = Event.PUT
DELETE = Event.DELETE


class WatchError(Exception):
    """A watch could not be created (the text is etcd's cancel reason)."""


ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"


class WatchResponse:
    """What the store hands a stream: events of whole revisions, a progress
    notification (no events) or a compaction notice (``compact_revision``)."""

    __slots__ = ("watch_id", "events", "revision", "compact_revision")

    def __init__(self, watch_id: int, events: list, revision: int, compact_revision: int = 0):
        self.watch_id = watch_id
        self.events = events
        self.revision = revision
        self.compact_revision = compact_revision

    def __repr__(self) -> str:
        return (f"WatchResponse(id={self.watch_id}, rev={self.revision}, "
                f"events={[(e.type, e.kv.key, e.kv.mod_revision) for e in self.events]}, "
                f"compact={self.compact_revision})")


class Watcher:
    __slots__ = ("key", "end", "start_rev", "min_rev", "id", "stream", "no_put", "no_delete",
                 "victim", "compacted", "restore")

    def __init__(self, key: bytes, end: bytes | None, start_rev: int, wid: int, stream,
                 no_put: bool = False, no_delete: bool = False):
        self.key = key
        self.end = end          # None: one key; b"": every key >= key; else [key, end)
        self.start_rev = start_rev
        self.min_rev = start_rev  # the lowest revision not yet delivered
        self.id = wid
        self.stream = stream      # None once cancelled
        self.no_put = no_put
        self.no_delete = no_delete
        self.victim = False
        self.compacted = False
        self.restore = False

    def matches(self, k: bytes) -> bool:
        end = self.end
        if end is None:
            return k == self.key
        return self.key <= k and (not end or k < end)

    def send(self, resp: WatchResponse) -> bool:
        """Queue ``resp`` on the stream without waiting; False when it is full."""
        progress = not resp.events
        if self.no_put or self.no_delete:
            drop = PUT if self.no_put else None
            drop_d = DELETE if self.no_delete else None
            resp.events = [e for e in resp.events if e.type != drop and e.type != drop_d]
        if not progress and not resp.events:
            return True
        stream = self.stream
        if stream is None:
            return True  # cancelled while a batch was in flight
        return stream.send(resp)

    def __repr__(self) -> str:
        return f"Watcher(id={self.id}, key={self.key!r}, end={self.end!r}, min_rev={self.min_rev})"


class WatcherGroup:
    """A set of watchers indexed for 'who watches this key'."""

    __slots__ = ("watchers", "by_key", "by_range")

    def __init__(self):
        self.watchers: set[Watcher] = set()
        self.by_key: dict[bytes, set[Watcher]] = {}
        self.by_range: dict[tuple[bytes, bytes], set[Watcher]] = {}

    def __len__(self) -> int:
        return len(self.watchers)

    def __contains__(self, w: Watcher) -> bool:
        return w in self.watchers

    def add(self, w: Watcher) -> None:
        assert w not in self.watchers, "watcher added twice"
        self.watchers.add(w)
        if w.end is None:
            self.by_key.setdefault(w.key, set()).add(w)
        else:
            self.by_range.setdefault((w.key, w.end), set()).add(w)

    def delete(self, w: Watcher) -> bool:
        if w not in self.watchers:
            return False
        self.watchers.discard(w)
        idx, k = (self.by_key, w.key) if w.end is None else (self.by_range, (w.key, w.end))
        s = idx[k]
        s.discard(w)
        if not s:
            del idx[k]
        return True

    def watchers_of(self, k: bytes) -> Iterable[Watcher]:
        out = self.by_key.get(k)
        ranges = [ws for (lo, hi), ws in self.by_range.items() if lo <= k and (not hi or k < hi)]
        if not ranges:
            return out or ()
        merged = set(out) if out else set()
        for ws in ranges:
            merged |= ws
        return merged

    def contains_key(self, k: bytes) -> bool:
        if k in self.by_key:
            return True
        return any(lo <= k and (not hi or k < hi) for lo, hi in self.by_range)

    def choose(self, max_watchers: int, cur_rev: int, compact_rev: int,
               parent: "WatcherGroup") -> tuple["WatcherGroup", int]:
        """Up to ``max_watchers`` watchers to sync now and the lowest revision
        they need; watchers behind the compaction get their compaction notice
        (and leave ``parent``) or stay for the next round when it won't fit."""
        ret = WatcherGroup()
        min_rev = None
        for w in list(self.watchers):
            if len(ret) >= max_watchers:
                break
            if w.min_rev > cur_rev:
                # only after the state was replaced (etcd's restore case): it
                # has nothing to read and moves to synced this round
                w.restore = False
            if w.min_rev < compact_rev:
                if w.send(WatchResponse(w.id, [], 0, compact_rev)):
                    w.compacted = True
                    parent.delete(w)
                continue
            ret.add(w)
            if min_rev is None or w.min_rev < min_rev:
                min_rev = w.min_rev
        return ret, (min_rev if min_rev is not None else cur_rev + 1)


class EventBatch:
    """Revision-ordered events for one watcher, at most WATCH_BATCH_MAX_REVS
    revisions; ``more_rev`` is the first revision left out."""

    __slots__ = ("evs", "revs", "more_rev")

    def __init__(self):
        self.evs: list = []
        self.revs = 0
        self.more_rev = 0

    def add(self, ev: Event) -> None:
        if self.revs > WATCH_BATCH_MAX_REVS:
            return
        if not self.evs:
            self.revs = 1
            self.evs.append(ev)
            return
        if ev.kv.mod_revision > self.evs[-1].kv.mod_revision:
            self.revs += 1
            if self.revs > WATCH_BATCH_MAX_REVS:
                self.more_rev = ev.kv.mod_revision
                return
        self.evs.append(ev)


def watcher_batches(group: WatcherGroup, evs: list) -> dict[Watcher, EventBatch]:
    out: dict[Watcher, EventBatch] = {}
    if not group.watchers:
        return out
    for ev in evs:
        for w in group.watchers_of(ev.kv.key):
            if ev.kv.mod_revision >= w.min_rev:  # never deliver twice
                eb = out.get(w)
                if eb is None:
                    eb = out[w] = EventBatch()
                eb.add(ev)
    return out


def changes_to_events(changes: list) -> list:
    """The KV store's changes (a delete has only key and mod_revision) as events."""
    return [Event(type=PUT if kv.create_revision else DELETE, kv=kv) for kv in changes]


class WatchStream:
    """Many watchers sharing one bounded queue of responses (a gRPC stream).

    ``send`` (the store's side) never waits: it fails when ``buf`` store
    responses are queued.  Control items (``put_control``) are never refused
    and keep their place in the order.  ``on_ready`` is called when the
    queue becomes non-empty."""

    def __init__(self, store: "WatchableStore", buf: int = CHAN_BUF_LEN,
                 on_ready: Callable[[], None] | None = None):
        self.store = store
        self.buf = buf
        self.on_ready = on_ready
        self.queue: deque = deque()
        self.queued = 0  # store responses in the queue
        self.next_id = 0
        self.closed = False
        self.watchers: dict[int, Watcher] = {}

    # ---- the store's side ----------------------------------------------------------------
    def send(self, resp: WatchResponse) -> bool:
        if self.closed:
            return True
        if self.queued >= self.buf:
            return False
        self.queue.append(resp)
        self.queued += 1
        if self.on_ready is not None:
            self.on_ready()
        return True

    def put_control(self, item) -> None:
        self.queue.append(item)
        if self.on_ready is not None:
            self.on_ready()

    # ---- the consumer's side ---------------------------------------------------------------
    def pop(self):
        """The next queued item, or None."""
        if not self.queue:
            return None
        item = self.queue.popleft()
        if isinstance(item, WatchResponse):
            self.queued -= 1
            if self.store.victims:
                self.store.kick()
        return item

    def watch(self, wid: int, key: bytes, end: bytes | None, start_rev: int,
              no_put: bool = False, no_delete: bool = False) -> int:
        """Create a watcher; ``wid`` 0 lets the stream pick the lowest free id."""
        if end and key >= end:
            raise WatchError(ERR_EMPTY_RANGE)
        if self.closed:
            raise WatchError(ERR_EMPTY_RANGE)
        if wid == 0:
            while self.next_id in self.watchers:
                self.next_id += 1
            wid = self.next_id
            self.next_id += 1
        elif wid in self.watchers:
            raise WatchError(ERR_DUPLICATE_ID)
        w = Watcher(key, end, start_rev, wid, self, no_put, no_delete)
        self.store.add_watcher(w)
        self.watchers[wid] = w
        return wid

    def cancel(self, wid: int) -> bool:
        w = self.watchers.pop(wid, None)
        if w is None or self.closed:
            return False
        self.store.cancel_watcher(w)
        return True

    def request_progress(self, wid: int) -> None:
        w = self.watchers.get(wid)
        if w is not None:
            self.store.progress_if_sync({wid: w}, wid)

    def request_progress_all(self) -> bool:
        """Progress for the whole stream (id -1), only when every watcher is
        synced; a stream without watchers is trivially in sync and answered
        at once (as etcd 3.5.1 answers it)."""
        if not self.watchers:
            return self.send(WatchResponse(-1, [], self.store.kv.current_rev))
        return self.store.progress_if_sync(self.watchers, -1)

    def rev(self) -> int:
        return self.store.kv.current_rev

    def close(self) -> None:
        for w in self.watchers.values():
            self.store.cancel_watcher(w)
        self.closed = True
        self.queue.clear()
        self.queued = 0


class WatchableStore:
    def __init__(self, kv, on_work: Callable[[], None] | None = None):
        self.kv = None
        self.on_work = on_work
        self.synced = WatcherGroup()
        self.unsynced = WatcherGroup()
        self.victims: list[dict[Watcher, EventBatch]] = []
        self.attach(kv)

    # ---- the KV store underneath ------------------------------------------------------------
    def attach(self, kv) -> None:
        """Listen to ``kv``; after the state was replaced (a snapshot from the
        leader), every synced watcher catches up from the new store."""
        old = self.kv
        if old is not None and self._on_changes in old.listeners:
            old.listeners.remove(self._on_changes)
        self.kv = kv
        kv.listeners.append(self._on_changes)
        if old is not None and old is not kv:
            for w in list(self.synced.watchers):
                self.synced.delete(w)
                w.restore = True
                self.unsynced.add(w)
            self.kick()

    def kick(self) -> None:
        if self.on_work is not None:
            self.on_work()

    def new_stream(self, buf: int = CHAN_BUF_LEN, on_ready=None) -> WatchStream:
        return WatchStream(self, buf, on_ready)

    # ---- watchers ---------------------------------------------------------------------------
    def add_watcher(self, w: Watcher) -> None:
        cur = self.kv.current_rev
        if w.start_rev > cur or w.start_rev == 0:
            w.min_rev = max(cur + 1, w.start_rev)
            self.synced.add(w)
        else:
            self.unsynced.add(w)
            self.kick()

    def cancel_watcher(self, w: Watcher) -> None:
        if not (self.unsynced.delete(w) or self.synced.delete(w)):
            for batch in self.victims:
                if batch.pop(w, None) is not None:
                    break
        w.stream = None

    # ---- synced watchers: live events ---------------------------------------------------------
    def _on_changes(self, changes: list, rev: int) -> None:
        if self.synced.watchers:
            self.notify(rev, changes_to_events(changes))

    def notify(self, rev: int, evs: list) -> None:
        victims = None
        for w, eb in watcher_batches(self.synced, evs).items():
            assert eb.revs == 1, "a notification spans one revision"
            if not w.send(WatchResponse(w.id, eb.evs, rev)):
                victims = self._make_victim(w, eb, victims, self.synced)
            w.min_rev = rev + 1
        self._add_victims(victims)

    @staticmethod
    def _make_victim(w, eb, victims: dict | None, group) -> dict:
        """A watcher whose stream is full leaves its group with the batch
        it could not take (retried by move_victims)."""
        w.victim = True
        victims = victims if victims is not None else {}
        victims[w] = eb
        group.delete(w)
        return victims

    def _add_victims(self, victims: dict | None) -> None:
        if victims:
            self.victims.append(victims)
            self.kick()

    # ---- unsynced watchers: history from the backend ----------------------------------------
    def sync_watchers(self) -> int:
        """One catch-up round; returns how many watchers are still unsynced."""
        if not self.unsynced.watchers:
            return 0
        kv = self.kv
        cur, compact = kv.current_rev, kv.compact_main_rev
        group, min_rev = self.unsynced.choose(MAX_WATCHERS_PER_SYNC, cur, compact, self.unsynced)
        if not group.watchers:
            return len(self.unsynced)
        evs, upto = self._read_events(group, min_rev, cur)
        victims = None
        batches = watcher_batches(group, evs)
        for w in group.watchers:
            w.min_rev = max(upto, w.min_rev)
            eb = batches.get(w)
            if eb is None:
                if w.min_rev > cur:
                    self.unsynced.delete(w)
                    self.synced.add(w)
                continue
            if eb.more_rev:
                w.min_rev = eb.more_rev
            if not w.send(WatchResponse(w.id, eb.evs, cur)):
                victims = self._make_victim(w, eb, victims, self.unsynced)
            elif w.min_rev > cur:
                self.unsynced.delete(w)
                self.synced.add(w)
        self._add_victims(victims)
        return len(self.unsynced)

    def _read_events(self, group: WatcherGroup, min_rev: int, cur: int) -> tuple[list, int]:
        """Events of whole revisions in [min_rev, cur] for keys ``group``
        watches, and the first revision not read (cur + 1 unless truncated)."""
        backend = self.kv.backend
        lo, hi = R.main_bytes(min_rev), R.main_bytes(cur + 1)
        items = backend.range_key_bucket(lo, hi, SYNC_READ_LIMIT)
        upto = cur + 1
        if len(items) >= SYNC_READ_LIMIT:
            last = R.main_of(R.from_bytes(items[-1][0])[0])
            first = R.main_of(R.from_bytes(items[0][0])[0])
            if first == last:  # one huge revision: read all of it
                items = backend.range_key_bucket(lo, R.main_bytes(first + 1), 0)
                upto = first + 1
            else:
                while items and R.main_of(R.from_bytes(items[-1][0])[0]) == last:
                    items.pop()
                upto = last
        evs = []
        parse = KeyValue.FromString
        contains = group.contains_key
        for k, v in items:
            kv = parse(v)
            if not contains(kv.key):
                continue
            r, tomb = R.from_bytes(k)
            if tomb:
                kv.mod_revision = R.main_of(r)
                evs.append(Event(type=DELETE, kv=kv))
            else:
                evs.append(Event(type=PUT, kv=kv))
        return evs, upto

    # ---- victims --------------------------------------------------------------------------------
    def move_victims(self) -> int:
        """Retry every victim's batch; returns how many were delivered."""
        victims, self.victims = self.victims, []
        retry: dict[Watcher, EventBatch] = {}
        moved = 0
        for batch in victims:
            for w, eb in batch.items():
                if w.stream is None:
                    continue
                if w.send(WatchResponse(w.id, eb.evs, w.min_rev - 1)):
                    moved += 1
                else:
                    retry[w] = eb
            cur = self.kv.current_rev
            for w, eb in batch.items():
                if w in retry or w.stream is None:
                    continue
                w.victim = False
                if eb.more_rev:
                    w.min_rev = eb.more_rev
                if w.min_rev <= cur:
                    self.unsynced.add(w)
                else:
                    self.synced.add(w)
        if retry:
            self.victims.append(retry)
        if self.unsynced.watchers and moved:
            self.kick()
        return moved

    # ---- progress ---------------------------------------------------------------------------------
    def progress_if_sync(self, watchers: dict, resp_id: int) -> bool:
        rev = self.kv.current_rev
        for w in watchers.values():
            if w not in self.synced or rev < w.start_rev:
                return False
        for w in watchers.values():
            w.send(WatchResponse(resp_id, [], rev))
            break
        return True

    def stats(self) -> dict:
        return {"synced": len(self.synced), "unsynced": len(self.unsynced),
                "victims": sum(len(b) for b in self.victims)}
