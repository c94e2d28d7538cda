"""A strict reader of the Prometheus text exposition format (0.0.4), written
for the tests and independent of prometheus_client: it rejects a sample
without a declared family, a malformed line, a label quoted wrongly, a
histogram whose buckets are not cumulative or lack +Inf, a duplicate series."""
from __future__ import annotations

import math
import re

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(\{{(.*)\}})?\s+(\S+)(\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Family:
    def __init__(self, name: str):
        self.name = name
        self.help = None
        self.type = "untyped"
        self.samples: list[tuple[str, dict[str, str], float]] = []

    def value(self, **labels) -> float:
        """The one sample of the family (its _total / plain name) matching labels."""
        hits = [v for n, lb, v in self.samples
                if n in (self.name, self.name + "_total") and all(lb.get(k) == x for k, x in labels.items())]
        if len(hits) != 1:
            raise KeyError(f"{self.name}{labels}: {len(hits)} samples")
        return hits[0]


def _labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise ValueError(f"bad labels {text!r} at {pos}")
        k, v = m.group(1), m.group(2)
        if k in out:
            raise ValueError(f"label {k} twice in {text!r}")
        out[k] = v.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        pos = m.end()
    return out


def _float(s: str) -> float:
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    return float(s)


def _family_of(sample: str, families: dict[str, Family]) -> Family:
    if sample in families:
        return families[sample]
    for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
        if sample.endswith(suffix) and sample[: -len(suffix)] in families:
            return families[sample[: -len(suffix)]]
    raise ValueError(f"sample {sample} has no # TYPE/# HELP family")


def parse(text: str) -> dict[str, Family]:
    families: dict[str, Family] = {}
    seen: set[tuple[str, tuple]] = set()
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not re.fullmatch(_NAME, name):
                    raise ValueError(f"line {lineno}: bad metric name {name!r}")
                fam = families.setdefault(name, Family(name))
                if parts[1] == "HELP":
                    fam.help = parts[3] if len(parts) > 3 else ""
                else:
                    t = parts[3].strip() if len(parts) > 3 else ""
                    if t not in TYPES:
                        raise ValueError(f"line {lineno}: unknown type {t!r}")
                    if fam.samples:
                        raise ValueError(f"line {lineno}: TYPE after samples of {name}")
                    fam.type = t
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"line {lineno}: not a sample: {line!r}")
        name, labels = m.group(1), _labels(m.group(3) or "")
        fam = _family_of(name, families)
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ValueError(f"line {lineno}: duplicate series {key}")
        seen.add(key)
        fam.samples.append((name, labels, _float(m.group(4))))
    for fam in families.values():
        if fam.type == "histogram":
            _check_histogram(fam)
    return families


def _check_histogram(fam: Family) -> None:
    series: dict[tuple, list[tuple[float, float]]] = {}
    counts: dict[tuple, float] = {}
    for name, labels, v in fam.samples:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        if name == fam.name + "_bucket":
            series.setdefault(rest, []).append((_float(labels["le"]), v))
        elif name == fam.name + "_count":
            counts[rest] = v
    for rest, buckets in series.items():
        les = [le for le, _ in buckets]
        if les != sorted(les) or les[-1] != math.inf:
            raise ValueError(f"{fam.name}{rest}: buckets out of order or no +Inf")
        vals = [v for _, v in buckets]
        if any(b < a for a, b in zip(vals, vals[1:])):
            raise ValueError(f"{fam.name}{rest}: buckets not cumulative")
        if counts.get(rest) != vals[-1]:
            raise ValueError(f"{fam.name}{rest}: _count {counts.get(rest)} != +Inf bucket {vals[-1]}")
