"""Elle-style checking of list-append histories (Kingsbury & Alvaro,
"Elle: Inferring Isolation Anomalies from Experimental Observations").

Each key's version order is the longest list any read returned (every read
must be a prefix of it: else an *incompatible order*).  Appended values are
unique, so a read names the transaction that wrote each element, and
dependencies follow:

- ``ww``: the writer of element i precedes the writer of element i+1;
- ``wr``: the writer of a read's last element precedes the reader;
- ``rw``: a reader precedes the writer of the element after its read's end
  (an anti-dependency);
- ``rt``: a transaction that completed before another began precedes it
  (real time: strict serializability).

A cycle is an anomaly, named by its edges: only ww is G0, ww/wr is G1c, one
rw is G-single, more rw is G2; a cycle that needs an rt edge violates strict
serializability (``-realtime``).  Besides cycles: G1a (a read saw an
element of a failed txn), G1b (a read saw a txn's intermediate state),
duplicates, reads of elements nobody appended, and lost appends (a
committed append missing from the final read).
"""
from __future__ import annotations

from collections import defaultdict

from ..history import FAIL, OK, pairs


def _txn_text(p) -> str:
    return (f"p{p.inv.process} [{p.start:.3f}-{p.end:.3f}] {p.type} "
            f"{p.result if p.result is not None else p.inv.value}")


class _Graph:
    def __init__(self):
        self.out: dict[int, dict[int, set]] = defaultdict(dict)

    def add(self, a: int, b: int, kind: str) -> None:
        if a != b:
            self.out[a].setdefault(b, set()).add(kind)

    def sccs(self, nodes) -> list[list[int]]:
        """Tarjan's algorithm, iteratively."""
        index, low, on, stack, out = {}, {}, set(), [], []
        counter = 0
        for root in nodes:
            if root in index:
                continue
            work = [(root, iter(self.out.get(root, {})))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on.add(root)
            while work:
                v, it = work[-1]
                nxt = next(it, None)
                if nxt is not None:
                    if nxt not in index:
                        index[nxt] = low[nxt] = counter
                        counter += 1
                        stack.append(nxt)
                        on.add(nxt)
                        work.append((nxt, iter(self.out.get(nxt, {}))))
                    elif nxt in on:
                        low[v] = min(low[v], index[nxt])
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
        return out

    def cycle_in(self, comp: list[int]) -> list[tuple[int, int, set]]:
        """A shortest cycle through the component's first node (BFS)."""
        members = set(comp)
        start = comp[0]
        prev = {start: None}
        queue = [start]
        for v in queue:
            for w in self.out.get(v, {}):
                if w == start:
                    path, x = [(v, start)], v
                    while prev[x] is not None:
                        path.append((prev[x], x))
                        x = prev[x]
                    return [(a, b, self.out[a][b]) for a, b in reversed(path)]
                if w in members and w not in prev:
                    prev[w] = v
                    queue.append(w)
        return []


def _classify(cycle) -> str:
    """Each edge counts as its strongest kind: rw, then wr, ww, rt."""
    data = [("rw" if "rw" in ks else "wr" if "wr" in ks else "ww" if "ww" in ks else "rt")
            for _, _, ks in cycle]
    rw = data.count("rw")
    name = "G0" if set(data) <= {"ww", "rt"} else "G1c" if rw == 0 else "G-single" if rw == 1 else "G2"
    return name + "-realtime" if "rt" in data else name


class _History:
    """The transactions of one list-append history, indexed."""

    def __init__(self, ps):
        self.ps = ps
        self.writer: dict[tuple[int, int], int] = {}     # (key, element) -> txn
        self.failed_writer: dict[tuple[int, int], int] = {}
        self.anomalies: list[dict] = []
        for i, p in enumerate(ps):
            for op, k, v in (p.inv.value or []):
                if op == "append":
                    (self.failed_writer if p.type == FAIL else self.writer)[(k, v)] = i
        self.reads: list[tuple[int, int, list]] = [
            (i, k, v) for i, p in enumerate(ps) if p.type == OK
            for op, k, v in (p.result or []) if op == "r"]

    def version_orders(self) -> dict[int, list]:
        longest: dict[int, list] = {}
        for _, k, v in self.reads:
            if len(v) > len(longest.get(k, [])):
                longest[k] = v
        for i, k, v in self.reads:
            longest.setdefault(k, [])
            if longest[k][:len(v)] != v:
                self.anomalies.append({"anomaly": "incompatible-order", "key": k, "read": v,
                                       "longest": longest[k], "txn": _txn_text(self.ps[i])})
            if len(set(v)) != len(v):
                self.anomalies.append({"anomaly": "duplicate-elements", "key": k, "read": v,
                                       "txn": _txn_text(self.ps[i])})
        return longest

    def check_reads(self) -> None:
        """G1a, G1b and elements nobody appended."""
        for i, k, v in self.reads:
            for e in v:
                if (k, e) in self.failed_writer:
                    self.anomalies.append({"anomaly": "G1a (aborted read)", "key": k, "element": e,
                                           "reader": _txn_text(self.ps[i]),
                                           "failed writer": _txn_text(self.ps[self.failed_writer[(k, e)]])})
                elif (k, e) not in self.writer:
                    self.anomalies.append({"anomaly": "read of an element nobody appended",
                                           "key": k, "element": e, "reader": _txn_text(self.ps[i])})
            if v:
                w = self.writer.get((k, v[-1]))
                if w is not None and w != i:
                    later = [x for op, kk, x in self.ps[w].inv.value if op == "append" and kk == k]
                    if later and later[-1] != v[-1]:
                        self.anomalies.append({"anomaly": "G1b (intermediate read)", "key": k,
                                               "read": v, "reader": _txn_text(self.ps[i]),
                                               "writer": _txn_text(self.ps[w])})


def _realtime_edges(g: _Graph, ps, nodes: list[int]) -> None:
    """T1 -> T2 when T1 completed before T2 began; only the edges not
    implied by others (each T2 from the latest completions before it)."""
    by_end = sorted((ps[i].end, i) for i in nodes if ps[i].end != float("inf"))
    by_start = sorted((ps[i].start, i) for i in nodes)
    frontier: list[int] = []
    j = 0
    for start, i in by_start:
        while j < len(by_end) and by_end[j][0] < start:
            t = by_end[j][1]
            frontier = [f for f in frontier if ps[f].end >= ps[t].start] + [t]
            j += 1
        for f in frontier:
            g.add(f, i, "rt")


def check_list_append(ops, workload: str) -> dict:
    ps = pairs(ops, workload)
    h = _History(ps)
    orders = h.version_orders()
    h.check_reads()
    g = _Graph()
    committed = {i for i, p in enumerate(ps) if p.type == OK}
    observed = {h.writer[(k, e)] for k, order in orders.items() for e in order if (k, e) in h.writer}
    nodes = sorted(committed | observed)
    for k, order in orders.items():
        ws = [h.writer.get((k, e)) for e in order]
        for a, b in zip(ws, ws[1:]):
            if a is not None and b is not None:
                g.add(a, b, "ww")
    for i, k, v in h.reads:
        order = orders.get(k, [])
        if v and (k, v[-1]) in h.writer:
            g.add(h.writer[(k, v[-1])], i, "wr")
        if len(v) < len(order) and (k, order[len(v)]) in h.writer:
            g.add(i, h.writer[(k, order[len(v)])], "rw")
    _realtime_edges(g, ps, [i for i in nodes if ps[i].type == OK])
    for comp in g.sccs(nodes):
        cycle = g.cycle_in(comp)
        h.anomalies.append({"anomaly": _classify(cycle), "cycle": [
            {"from": _txn_text(ps[a]), "to": _txn_text(ps[b]), "edges": sorted(ks)}
            for a, b, ks in cycle]})
    _lost_appends(h, ps, orders)
    return {"valid": not h.anomalies, "ops": len(ps), "txns_committed": len(committed),
            "anomalies": h.anomalies}


def _lost_appends(h: _History, ps, orders) -> None:
    """A committed append missing from the final read of its key."""
    finals = [i for i, p in enumerate(ps) if p.inv.process == "final" and p.type == OK]
    if not finals:
        return
    final = ps[finals[-1]]
    seen = {k: set(v) for op, k, v in final.result if op == "r"}
    for (k, e), i in h.writer.items():
        if ps[i].type == OK and k in seen and e not in seen[k]:
            h.anomalies.append({"anomaly": "lost append", "key": k, "element": e,
                                "writer": _txn_text(ps[i]), "final read": sorted(seen[k])})
