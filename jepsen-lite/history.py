"""Histories: what every client and the nemesis did, as Jepsen records it.

One :class:`Op` per line of ``history.jsonl``: ``process`` (a client id, or
``"nemesis"``), ``type`` (``invoke``, then one of ``ok`` -- it happened and
this is its result --, ``fail`` -- it certainly did not happen -- or
``info`` -- unknown: it may have happened, at any time after its invoke),
``f`` (the operation: ``read``, ``write``, ``cas``, ``txn``, ``add``...),
``value``, ``time`` (seconds since the run started, monotonic), ``member``
(the endpoint the client used) and ``workload``.  A completion repeats its
invocation's ``index`` in ``ref``."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

INVOKE, OK, FAIL, INFO = "invoke", "ok", "fail", "info"


@dataclass
class Op:
    process: object
    type: str
    f: str
    value: object = None
    time: float = 0.0
    member: str = ""
    workload: str = ""
    index: int = -1
    ref: int = -1           # a completion: the index of its invocation
    error: str = ""

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if v not in ("", None, -1) or k in ("value",)}
        return json.dumps(d, separators=(",", ":"), default=_default)

    @classmethod
    def from_json(cls, line: str) -> "Op":
        d = json.loads(line)
        return cls(**{k: d.get(k, v) for k, v in _DEFAULTS.items()})


_DEFAULTS = {"process": None, "type": "", "f": "", "value": None, "time": 0.0, "member": "",
             "workload": "", "index": -1, "ref": -1, "error": ""}


def _default(o):
    if isinstance(o, (bytes, bytearray)):
        return o.decode("latin-1")
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(type(o).__name__)


class Recorder:
    """Thread-safe history writer (one file, lines in order of recording)."""

    def __init__(self, path: Path | None = None, start: float | None = None):
        self.start = time.monotonic() if start is None else start
        self.lock = threading.Lock()
        self.ops: list[Op] = []
        self.path = path
        self._f = open(path, "w") if path is not None else None

    def now(self) -> float:
        return time.monotonic() - self.start

    def record(self, op: Op) -> Op:
        with self.lock:
            op.time = self.now()
            op.index = len(self.ops)
            self.ops.append(op)
            if self._f is not None:
                self._f.write(op.to_json() + "\n")
        return op

    def invoke(self, process, f: str, value=None, member: str = "", workload: str = "") -> Op:
        return self.record(Op(process, INVOKE, f, value, member=member, workload=workload))

    def complete(self, inv: Op, type_: str, value=None, error: str = "") -> Op:
        return self.record(Op(inv.process, type_, inv.f, value, member=inv.member,
                              workload=inv.workload, ref=inv.index, error=error))

    def note(self, text: str) -> Op:
        """Something the tool observed that is not an operation."""
        return self.record(Op("tool", INFO, "note", text))

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def load(path: Path) -> list[Op]:
    with open(path) as f:
        return [Op.from_json(line) for line in f if line.strip()]


@dataclass
class Pair:
    """An invocation with its completion (None: never completed -> info)."""
    inv: Op
    done: Op | None = None
    extra: dict = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.done.type if self.done is not None else INFO

    @property
    def start(self) -> float:
        return self.inv.time

    @property
    def end(self) -> float:
        """When it returned; an indeterminate op may take effect until the end."""
        return self.done.time if self.done is not None and self.done.type != INFO else float("inf")

    @property
    def result(self):
        return self.done.value if self.done is not None else None


def pairs(ops: list[Op], workload: str | None = None) -> list[Pair]:
    """Client operations as invocation/completion pairs, in invocation order."""
    out: dict[int, Pair] = {}
    for op in ops:
        if op.process == "nemesis" or (workload is not None and op.workload != workload):
            continue
        if op.type == INVOKE:
            out[op.index] = Pair(op)
        elif op.ref in out:
            out[op.ref].done = op
    return list(out.values())
