"""A one-line progress bar on stderr: steps done, the current step and its
own fraction, elapsed time."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, steps: int, out=sys.stderr, enabled: bool | None = None) -> None:
        self.steps = max(1, steps)
        self.done = 0
        self.label = ""
        self.out = out
        self.t0 = time.monotonic()
        self.enabled = out.isatty() if enabled is None else enabled
        self.last = 0.0

    def step(self, label: str) -> None:
        """A new step begins (the previous one is done)."""
        self.label = label
        self.show(0.0, force=True)

    def finish_step(self) -> None:
        self.done = min(self.steps, self.done + 1)

    def show(self, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.25:
            return
        self.last = now
        width = 30
        total = (self.done + max(0.0, min(1.0, fraction))) / self.steps
        filled = int(width * total)
        secs = int(now - self.t0)
        line = (f"[{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.steps} "
                f"{secs // 60:d}:{secs % 60:02d} {self.label} {100 * fraction:3.0f}%")
        if self.enabled:
            self.out.write("\r" + line[:160].ljust(160))
        elif force:
            self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.enabled:
            self.out.write("\n")
            self.out.flush()
