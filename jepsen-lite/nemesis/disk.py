"""Disk faults on one stopped member:

- ``bitflip-wal`` / ``bitflip-snap``: one bit flipped in the written part of
  its newest WAL segment / Raft snapshot file;
- ``truncate-wal``: the newest WAL segment cut short (a torn tail);
- ``full``: its data dir's filesystem (a tmpfs of the tool's) filled up
  while it runs.

After a corruption the member is started again: it must either refuse with
a clear message or repair a torn tail and serve (what it serves is checked
by the workloads).  A member that refuses gets its original file back and
starts again, so the run goes on."""
from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

from .base import Nemesis

START_GRACE = 8.0


def _written_end(path: Path) -> int:
    """The offset after the last non-zero byte (WAL segments are preallocated)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos = size
        while pos > 0:
            step = min(1 << 20, pos)
            f.seek(pos - step)
            chunk = f.read(step).rstrip(b"\0")
            if chunk:
                return pos - step + len(chunk)
            pos -= step
    return 0


def _newest(member, sub: str, suffix: str) -> Path | None:
    d = Path(member.server.data_dir) / "member" / sub
    files = sorted(d.glob(f"*{suffix}")) if d.is_dir() else []
    return files[-1] if files else None


class Disk(Nemesis):
    name = "disk"
    modes = ("bitflip-wal", "truncate-wal", "bitflip-snap", "full")

    def __init__(self):
        self.filler: Path | None = None

    def start(self, run, rng: random.Random) -> dict:
        c = run.cluster
        mode = rng.choice(self.modes if c.tmpfs else self.modes[:3])
        m = rng.choice([x for x in c.members if x.running])
        if mode == "full":
            return self._fill(m)
        target = _newest(m, "wal", ".wal") if mode.endswith("wal") else _newest(m, "snap", ".snap")
        if target is None:
            return {"mode": mode, "member": m.name, "skipped": "no such file yet"}
        c.kill(m)
        backup = target.with_name(target.name + ".jepsen-backup")
        shutil.copy2(target, backup)
        end = _written_end(target)
        if mode == "truncate-wal":
            cut = rng.randrange(max(end // 2, 1), max(end, 2))
            with open(target, "r+b") as f:
                f.truncate(cut)
            what = f"truncated at {cut} of {end}"
        else:
            pos = rng.randrange(max(end, 1))
            with open(target, "r+b") as f:
                f.seek(pos)
                b = f.read(1)
                f.seek(pos)
                f.write(bytes([b[0] ^ (1 << rng.randrange(8))]) if b else b"\x01")
            what = f"bit flipped at {pos} of {end}"
        return {"mode": mode, "member": m.name, "file": target.name, "what": what,
                **self._restart(c, m, target, backup)}

    def _restart(self, c, m, target: Path, backup: Path) -> dict:
        up = c.restart(m, wait=False)
        deadline = time.monotonic() + START_GRACE
        while up and time.monotonic() < deadline and m.running:
            time.sleep(0.2)
        if m.running:
            backup.unlink()
            return {"outcome": "started"}
        last = (m.server.log().strip().splitlines() or ["(no log)"])[-1][:300]
        shutil.move(backup, target)
        c.restart(m, wait=False)
        return {"outcome": "refused to start", "said": last, "restored": True}

    def _fill(self, m) -> dict:
        d = Path(m.server.data_dir).parent
        self.filler = d / "jepsen-filler"
        n = 0
        try:
            with open(self.filler, "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 20))
                    n += 1
        except OSError:
            pass  # the disk is full: that was the point
        return {"mode": "full", "member": m.name, "filled_mb": n}

    def end(self, run) -> dict:
        if self.filler is None:
            return {}
        self.filler.unlink(missing_ok=True)
        self.filler = None
        restarted = [m.name for m in run.cluster.members if not m.running and run.cluster.restart(m)]
        return {"freed": True, "restarted": restarted}

    def heal(self, run) -> None:
        self.end(run)
