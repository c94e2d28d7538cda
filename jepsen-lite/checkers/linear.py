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
        ok, info = check_partition(model, calls, max_steps)
        if info and "undecided" in info:
            v.notes.append(f"key {key!r}: {info['undecided']}")
        if not ok:
            v.valid = False
            v.failure = _report(key, calls, info)
            return v
    return v


def _report(key, calls: list[Call], info: dict) -> dict:
    """The shortest illegal prefix found: every op of the key that was
    called before the stuck op returned, in call order."""
    stuck: Call = info["stuck_on"]
    prefix = sorted((c for c in calls if c.start <= stuck.end), key=lambda c: c.start)
    return {"key": key, "linearized_before_stuck": info["linearized"],
            "state_at_stuck": info["state"], "stuck_on": stuck, "prefix": prefix}


# ---- models ------------------------------------------------------------------------------
ANY = "?"   # a revision not observed (the write was indeterminate)


class RegisterModel:
    """One key: state (value, mod revision); value None is "no key".

    - ``read``: result (value, mod_revision) must match (an unknown revision
      is learnt from the read);
    - ``write`` v: result = the write's revision;
    - ``cas`` (old, new) compares the value (a missing key never matches, as
      in etcd): result (True, rev) or (False, _);
    - ``cas-rev`` (rev, new) compares the mod revision, same results.
    An unknown output (indeterminate op) accepts either outcome."""

    init = (None, 0)

    @staticmethod
    def read_only(c: Call) -> bool:
        return c.f == "read" or (c.f in ("cas", "cas-rev") and c.known and not c.result[0])

    def step(self, state, c: Call):
        value, rev = state
        f = c.f
        if f == "read":
            if not c.known:
                return True, state
            rvalue, rrev = c.result
            if rvalue != value:
                return False, state
            if rev == ANY:
                return True, (value, rrev)
            return rrev == rev, state
        if f == "write":
            return True, (c.value, c.result if c.known else ANY)
        if f in ("cas", "cas-rev"):
            expect, new = c.value
            # etcd: a value compare never matches a missing key
            matches = (value is not None and value == expect) if f == "cas" else \
                (rev == expect or rev == ANY)
            if not c.known:   # may have happened (if it could) or not
                return True, ((new, ANY) if matches else state)
            succeeded, new_rev = c.result
            if succeeded:
                return (matches, (new, new_rev))
            fails = (value is None or value != expect) if f == "cas" else (rev != expect)
            return fails or rev == ANY, state
        raise ValueError(f"unknown register op {f!r}")
