"""Go's ``time.ParseDuration`` (etcd's flags and etcdctl's options are Go
durations: ``500ms``, ``1m30s``, ``2h``)."""
from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """A Go duration in seconds ("1h30m", "500ms", "-2s", "0").  Anything
    else raises ValueError with Go's message (``time: invalid duration "x"``,
    ``time: missing unit in duration "5"``)."""
    s = str(text).strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    body = s[1:] if s[:1] in "+-" else s
    pos, total = 0, 0.0
    for m in _PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(body) or not body:
        if body and re.fullmatch(r"\d+(?:\.\d*)?", body):
            raise ValueError(f'time: missing unit in duration "{text}"')
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total
