"""Named crash points, armed through the environment (like etcd's gofail).

    PYETCD_FAILPOINTS="raftBeforeSave=exit;walBeforeSync=exit(3)"

Terms are separated by ``;`` (or ``,``).  Actions:

- ``exit``      the process calls ``os._exit(1)`` the first time the point is hit
- ``exit(N)``   ... the N-th time it is hit (N >= 1)
- ``raise`` / ``raise(N)``  raise :class:`FailpointError` instead (in-process tests)
- ``off``       disarmed

Before exiting, one line ``failpoint <name> hit`` goes to stderr (fd 2,
unbuffered) so a test can tell the point from an ordinary crash.  Nothing
is flushed, closed or synced by Python; what was already written to the OS
stays in the page cache, so this simulates a process crash, not a power
cut (tests simulate lost caches by truncating or zeroing files).

:func:`failpoint` costs one global lookup and a truth test when nothing is
armed.  Known names are listed in ``KNOWN`` (callers may use others).
"""
from __future__ import annotations

import os
import re

ENV = "PYETCD_FAILPOINTS"

RAFT_BEFORE_SAVE = "raftBeforeSave"                 # before WAL.save of a Ready
RAFT_AFTER_SAVE = "raftAfterSave"                   # after WAL.save, before sending/applying
RAFT_BEFORE_SAVE_SNAP = "raftBeforeSaveSnap"
RAFT_AFTER_SAVE_SNAP = "raftAfterSaveSnap"
RAFT_BEFORE_WAL_RELEASE = "raftBeforeWALRelease"
BACKEND_BEFORE_COMMIT = "backendBeforeCommit"
BACKEND_AFTER_COMMIT = "backendAfterCommit"
APPLY_BEFORE_CONSISTENT_INDEX = "applyBeforeConsistentIndex"
WAL_BEFORE_WRITE = "walBeforeWrite"                 # in WAL.save, buffer built, nothing written
WAL_BEFORE_SYNC = "walBeforeSync"                   # in WAL.save, written, not fdatasync'ed
WAL_AFTER_SYNC = "walAfterSync"
WAL_BEFORE_CUT_RENAME = "walBeforeCutRename"        # new segment ready as .tmp, not renamed
WAL_AFTER_CUT = "walAfterCut"
SNAP_BEFORE_RENAME = "snapBeforeRename"             # snapshot file written as .tmp

KNOWN = frozenset({
    RAFT_BEFORE_SAVE, RAFT_AFTER_SAVE, RAFT_BEFORE_SAVE_SNAP, RAFT_AFTER_SAVE_SNAP,
    RAFT_BEFORE_WAL_RELEASE, BACKEND_BEFORE_COMMIT, BACKEND_AFTER_COMMIT,
    APPLY_BEFORE_CONSISTENT_INDEX, WAL_BEFORE_WRITE, WAL_BEFORE_SYNC, WAL_AFTER_SYNC,
    WAL_BEFORE_CUT_RENAME, WAL_AFTER_CUT, SNAP_BEFORE_RENAME,
})


class FailpointError(RuntimeError):
    """Raised by a point armed with ``raise``."""


_TERM = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=\s*(exit|raise|off)\s*(?:\(\s*(\d+)\s*\))?\s*$")

# name -> [action, hits remaining before it fires]
_armed: dict[str, list] = {}


def parse(spec: str) -> dict[str, tuple[str, int]]:
    """``"a=exit;b=exit(3)"`` -> ``{"a": ("exit", 1), "b": ("exit", 3)}``."""
    out: dict[str, tuple[str, int]] = {}
    for term in re.split(r"[;,]", spec or ""):
        if not term.strip():
            continue
        m = _TERM.match(term)
        if m is None:
            raise ValueError(f"{ENV}: cannot parse {term!r} (want name=exit or name=exit(N))")
        name, action, nth = m.group(1), m.group(2), int(m.group(3) or 1)
        if nth < 1:
            raise ValueError(f"{ENV}: {term!r}: N must be >= 1")
        out[name] = (action, nth)
    return out


def arm(name: str, action: str = "exit", nth: int = 1) -> None:
    if action == "off":
        _armed.pop(name, None)
    else:
        _armed[name] = [action, nth]


def disarm_all() -> None:
    _armed.clear()


def load_env(environ=os.environ) -> None:
    """(Re)arm from ``PYETCD_FAILPOINTS``; done once at import."""
    _armed.clear()
    for name, (action, nth) in parse(environ.get(ENV, "")).items():
        arm(name, action, nth)


def armed() -> dict[str, tuple[str, int]]:
    return {k: (v[0], v[1]) for k, v in _armed.items()}


def _hit(name: str) -> None:
    slot = _armed.get(name)
    if slot is None:
        return
    slot[1] -= 1
    if slot[1] > 0:
        return
    del _armed[name]
    if slot[0] == "raise":
        raise FailpointError(name)
    try:
        os.write(2, f"failpoint {name} hit\n".encode())
    finally:
        os._exit(1)


def failpoint(name: str) -> None:
    """Crash here if ``name`` is armed (nearly free otherwise)."""
    if _armed:
        _hit(name)


# ---- test-only defects ----------------------------------------------------------------
# Deliberate bugs, off unless named in PYETCD_TEST_DEFECTS (comma-separated),
# so that fault campaigns can show they catch them (jepsen-lite's self-test).
DEFECTS_ENV = "PYETCD_TEST_DEFECTS"
STALE_READS = "staleReads"           # linearizable reads served without ReadIndex
ACK_BEFORE_FSYNC = "ackBeforeFsync"  # entries acknowledged, fdatasync'ed 3 s later
SKIP_FSYNC = "skipFsync"             # no fdatasync of the WAL or the backend at all
DEFECTS = frozenset({STALE_READS, ACK_BEFORE_FSYNC, SKIP_FSYNC})


def parse_defects(spec: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in (spec or "").split(",") if n.strip())
    unknown = names - DEFECTS
    if unknown:
        raise ValueError(f"{DEFECTS_ENV}: unknown defect(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(DEFECTS))})")
    return names


_defects: frozenset[str] = frozenset()


def defects() -> frozenset[str]:
    """The defects this process was started with."""
    return _defects


def defect(name: str) -> bool:
    return name in _defects


load_env()
_defects = parse_defects(os.environ.get(DEFECTS_ENV, ""))
