"""etcdctl's output helpers: go-humanize sizes and olekukonko/tablewriter tables."""
from __future__ import annotations

from pyetcd.util.sizes import human_bytes

__all__ = ["human_bytes", "table"]


def table(headers: list[str], rows: list[list[str]]) -> str:
    """tablewriter with etcdctl's settings: centered headers, right-aligned cells."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def center(h, w):
        gap = w - len(h)
        left = gap // 2
        return " " * left + h + " " * (gap - left)

    out = [sep, "|" + "|".join(f" {center(h, w)} " for h, w in zip(headers, widths)) + "|", sep]
    for r in rows:
        out.append("|" + "|".join(f" {c.rjust(w)} " for c, w in zip(r, widths)) + "|")
    out.append(sep)
    return "\n".join(out) + "\n"
