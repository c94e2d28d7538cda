"""Linearizability: Wing & Gong's search with Lowe's memoisation, as
porcupine does it.

Operations are partitioned by key (P-compositionality: a history is
linearizable iff each key's sub-history is) and each partition is searched
separately.  The history becomes a list of call and return entries in time
order; the search walks it, linearizing a call whose effect the model
accepts and lifting it (with its return) out of the list, and backtracks
when it reaches a return whose call it could not linearize.  A cache of
(set of linearized ops, model state) cuts every path that was already
tried.  An indeterminate operation (a timeout: ``info``) returns at
infinity: it may take effect at any point after its call, or never (it is
then linearized after everything else, where it changes nothing observed).

A model is ``init``, ``step(state, op) -> (ok, new state)`` and
``read_only(op)``; ``op`` is a :class:`Call` with the input (``f``,
``value``) and the observed output (``result``, None for an indeterminate
operation).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class Call:
    id: int
    f: str
    value: object
    result: object
    start: float
    end: float
    known: bool            # the output was observed (ok), not unknown (info)
    ref: object = None     # what the report points to (the history pair)


@dataclass
class Verdict:
    valid: bool
    partitions: int = 0
    ops: int = 0
    failure: dict | None = None
    notes: list = field(default_factory=list)


class _Entry:
    __slots__ = ("call", "is_call", "match", "prev", "next", "time")

    def __init__(self, call: Call, is_call: bool, time: float):
        self.call, self.is_call, self.time = call, is_call, time
        self.match = self.prev = self.next = None


def _entries(calls: list[Call]) -> _Entry:
    """The doubly linked list of call and return entries (a sentinel head)."""
    items = []
    for c in calls:
        ce, re_ = _Entry(c, True, c.start), _Entry(c, False, c.end)
        ce.match = re_
        items.append((c.start, 0, c.id, ce))
        items.append((c.end, 1, c.id, re_))
    items.sort(key=lambda t: (t[0], t[1], t[2]))  # at equal times calls come first
    head = _Entry(None, False, float("-inf"))
    prev = head
    for *_, e in items:
        prev.next, e.prev = e, prev
        prev = e
    return head


def _lift(e: _Entry) -> None:
    e.prev.next = e.next
    if e.next is not None:
        e.next.prev = e.prev
    m = e.match
    m.prev.next = m.next
    if m.next is not None:
        m.next.prev = m.prev


def _unlift(e: _Entry) -> None:
    m = e.match
    m.prev.next = m
    if m.next is not None:
        m.next.prev = m
    e.prev.next = e
    if e.next is not None:
        e.next.prev = e


def check_partition(model, calls: list[Call], max_steps: int = 50_000_000) -> tuple[bool, dict | None]:
    """Search one partition; (True, None) or (False, what got stuck).

    An operation the model calls read-only (it changes no state, whatever
    the state: a read, a compare-and-set observed to fail) is linearized
    without a backtracking point when it leaves the state as it was: its
    call comes before every remaining return, so any valid order that
    places it later can place it now instead."""
    head = _entries(calls)
    state = model.init
    linearized = 0
    cache: set = set()
    stack: list[tuple[_Entry, object, bool]] = []
    entry = head.next
    best = (0, None, None)  # (ops linearized, stuck return, state there)
    steps = 0
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return True, {"undecided": f"gave up after {max_steps} steps"}
        if entry.is_call:
            ok, new_state = model.step(state, entry.call)
            if ok:
                bits = linearized | (1 << entry.call.id)
                key = (bits, new_state)
                if key not in cache:
                    cache.add(key)
                    forced = new_state == state and model.read_only(entry.call)
                    stack.append((entry, state, forced))
                    state, linearized = new_state, bits
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
            continue
        if len(stack) >= best[0]:
            best = (len(stack), entry.call, state)
        while True:
            if not stack:
                return False, _stuck(best)
            e, state, forced = stack.pop()
            linearized &= ~(1 << e.call.id)
            _unlift(e)
            if not forced:
                entry = e.next
                break
    return True, None


def _stuck(best) -> dict:
    n, call, state = best
    return {"linearized": n, "stuck_on": call, "state": state}


def check(model, calls_by_key: dict, max_steps: int = 50_000_000) -> Verdict:
    """Every partition; the verdict names the first illegal one."""
    v = Verdict(True, partitions=len(calls_by_key), ops=sum(len(c) for c in calls_by_key.values()))
    for key in sorted(calls_by_key, key=repr):
        calls = calls_by_key[key]
        for i, c in enumerate(calls):
            c.id = i
        m = model.prepare(calls) if hasattr(model, "prepare") else model
        ok, info = check_partition(m, calls, max_steps)
        if info and "undecided" in info:
            v.notes.append(f"key {key!r}: {info['undecided']}")
        if not ok:
            v.valid = False
            v.failure = _report(key, calls, info)
            return v
    return v


def _report(key, calls: list[Call], info: dict) -> dict:
    """Where the search got stuck, with the illegal prefix (every op of the
    key called before the stuck op returned) cut down to the window that
    matters: from the writes the stuck op contradicts -- the last write that
    completed before it began, and the write of the value it observed."""
    stuck: Call = info["stuck_on"]
    prefix = sorted((c for c in calls if c.start <= stuck.end), key=lambda c: c.start)
    writes = [c for c in prefix if c is not stuck and c.f != "read" and c.known]
    before = [c for c in writes if c.end < stuck.start]
    anchors = [max(before, key=lambda c: c.end)] if before else []
    seen = stuck.result[0] if stuck.known and isinstance(stuck.result, tuple) else None
    anchors += [c for c in writes if _written_value(c) == seen and seen is not None]
    t0 = min((c.start for c in anchors), default=stuck.start)
    window = [c for c in prefix if c.end >= t0 or c is stuck]
    return {"key": key, "linearized_before_stuck": info["linearized"],
            "state_at_stuck": info["state"], "stuck_on": stuck, "prefix": window,
            "prefix_ops_before_window": len(prefix) - len(window)}


def _written_value(c: Call):
    if c.f == "write":
        return c.value
    if c.f in ("cas", "cas-rev") and c.result and c.result[0]:
        return c.value[1]
    return None


# ---- models ------------------------------------------------------------------------------
ANY = "?"   # a revision not observed (the write was indeterminate)


def _observed(c: Call):
    """The register value an ok operation saw (None: it saw none): a read's,
    what a failed CAS found, what a successful value CAS compared with."""
    if not c.known or c.f == "write":
        return None
    if c.f == "read":
        return c.result[0]
    if not c.result[0]:
        return c.result[1]
    return c.value[0] if c.f == "cas" else None


def _written(c: Call):
    if c.f == "write":
        return c.value
    if c.f in ("cas", "cas-rev"):
        return c.value[1]
    return None


def bound_indeterminate(calls: list[Call]) -> tuple[list[Call], int]:
    """Tighten the indeterminate writes of a register with unique values,
    where every observation is explicit (reads, failed CASes that return
    what they found, successful CASes that compared with a value):

    - one whose value nobody observed is left out: it may as well have
      happened last, where it changes nothing that was seen;
    - one whose value was observed must have happened before its first
      observer returned, so it returns there instead of at infinity.

    An indeterminate CAS whose new value was observed happened, so the
    value it compared with was observed too (by then): the observations
    propagate along such chains.  Neither rule excludes a valid
    linearization; both cut the search.  Returns the calls to check and how
    many were left out."""
    first_seen: dict = {}
    for c in calls:
        v = _observed(c)
        if v is not None and c.end < first_seen.get(v, float("inf")):
            first_seen[v] = c.end
    chained = [c for c in calls if not c.known and c.f == "cas"]
    changed = True
    while changed:
        changed = False
        for c in chained:
            seen = first_seen.get(c.value[1])
            if seen is not None and seen < first_seen.get(c.value[0], float("inf")):
                first_seen[c.value[0]] = seen
                changed = True
    out = []
    for c in calls:
        if not c.known and c.f != "read":
            seen = first_seen.get(_written(c))
            if seen is None:
                continue
            c.end = max(seen, c.start)
        out.append(c)
    return out, len(calls) - len(out)


class RegisterModel:
    """One key: state (value, mod revision, floor); value None is "no key",
    floor the highest revision observed so far.

    - ``read``: result (value, mod_revision) must match (an unknown revision
      is learnt from the read);
    - ``write`` v: result = the write's revision;
    - ``cas`` (old, new) compares the value (a missing key never matches, as
      in etcd): result (True, rev), or (False, value, mod revision) -- what
      the failed CAS found;
    - ``cas-rev`` (rev, new) compares the mod revision, same results.
    An unknown output (indeterminate op) accepts either outcome.

    Revisions only grow, and every write with a known revision is one of
    the key's versions: :meth:`prepare` lists them, and a known write is
    linearized only as the next of them after the floor (anything else
    would strand the ones in between)."""

    init = (None, 0, 0)

    def __init__(self, successor: dict | None = None):
        self.successor = successor or {}

    def prepare(self, calls: list[Call]) -> "RegisterModel":
        revs = sorted({c.result[1] if c.f != "write" else c.result for c in calls
                       if c.known and (c.f == "write" or (c.f != "read" and c.result[0]))})
        return RegisterModel(dict(zip([0] + revs, revs)))

    @staticmethod
    def read_only(c: Call) -> bool:
        return c.f == "read" or (c.f in ("cas", "cas-rev") and c.known and not c.result[0])

    def _next_ok(self, floor: int, r: int) -> bool:
        nxt = self.successor.get(floor)
        return r > floor and (nxt is None or r <= nxt) if self.successor else r > floor

    def step(self, state, c: Call):
        value, rev, floor = state
        f = c.f
        if f == "read":
            if not c.known:
                return True, state
            rvalue, rrev = c.result
            if rvalue != value:
                return False, state
            if rev == ANY:
                return rrev > floor, (value, rrev, max(floor, rrev))
            return rrev == rev, state
        if f == "write":
            if not c.known:
                return True, (c.value, ANY, floor)
            if not self._next_ok(floor, c.result):
                return False, state
            return True, (c.value, c.result, c.result)
        if f in ("cas", "cas-rev"):
            return self._cas(value, rev, floor, c)
        raise ValueError(f"unknown register op {f!r}")

    def _cas(self, value, rev, floor, c: Call):
        expect, new = c.value
        # etcd: a value compare never matches a missing key
        matches = (value is not None and value == expect) if c.f == "cas" else \
            (rev == expect or rev == ANY)
        if not c.known:   # may have happened (if it could) or not
            return True, ((new, ANY, floor) if matches else (value, rev, floor))
        if c.result[0]:
            r = c.result[1]
            return matches and self._next_ok(floor, r), (new, r, r)
        # a failed CAS observed the register, as a read does
        _, seen_value, seen_rev = c.result
        if seen_value != value or (rev != ANY and seen_rev != rev) or \
                (rev == ANY and seen_rev <= floor and seen_value is not None):
            return False, (value, rev, floor)
        fails = (value is None or value != expect) if c.f == "cas" else (seen_rev != expect)
        return fails, (value, seen_rev, max(floor, seen_rev))
