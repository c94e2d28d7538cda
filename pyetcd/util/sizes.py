"""Byte sizes as etcd prints them (go-humanize ``Bytes``: SI units)."""
from __future__ import annotations

import math

_SIZES = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def human_bytes(n: int) -> str:
    """``1234567`` -> ``1.2 MB``; ``42`` -> ``42 B``."""
    if n < 10:
        return f"{n} B"
    e = math.floor(math.log(n) / math.log(1000))
    val = math.floor(n / 1000 ** e * 10 + 0.5) / 10
    return f"{val:.0f} {_SIZES[e]}" if val >= 10 else f"{val:.1f} {_SIZES[e]}"
