"""The watch guarantees (etcd's tests/robustness/validate/watch.go), checked
against a reference stream read after the faults.

Events are ``[revision, type (0 put, 1 delete), key, value,
create_revision, version, prev value or None]``."""
from __future__ import annotations

from collections import defaultdict

from ..history import OK

PUT, DELETE = 0, 1


def _state_before(reference: list) -> dict:
    """(revision, key) -> the key's value just before that revision (None:
    absent), from the reference (which starts at a known point: keys whose
    history starts before it are unknown, marked by a missing entry)."""
    last: dict[str, object] = {}
    before: dict[tuple, object] = {}
    for ev in reference:
        rev, typ, key = ev[0], ev[1], ev[2]
        if key in last:
            before[(rev, key)] = last[key]
        last[key] = ev[3] if typ == PUT else None
    return before


def check_watch(ps) -> dict:
    refs = [p for p in ps if p.inv.f == "reference" and p.type == OK]
    out = {"valid": True, "ops": len(ps), "anomalies": []}
    if not refs:
        out.update(valid=None, error="no reference stream could be read after the faults")
        return out
    ref = refs[-1].result
    ref_events = ref["events"]
    by_rev = defaultdict(list)
    for ev in ref_events:
        by_rev[ev[0]].append(ev)
    before = _state_before(ref_events)
    watchers = defaultdict(list)
    for p in ps:
        if p.inv.f in ("watch-start", "watch-resp", "watch-end") and p.result:
            watchers[p.result["w"]].append(p)
    out["watchers"] = len(watchers)
    out["events_delivered"] = 0
    for wid, recs in watchers.items():
        bad = _check_one(wid, recs, ref, by_rev, before)
        out["events_delivered"] += sum(len(r.result.get("events", [])) for r in recs
                                       if r.inv.f == "watch-resp")
        out["anomalies"] += bad
    out["valid"] = not out["anomalies"]
    return out


def _check_one(wid, recs, ref, by_rev, before) -> list[dict]:
    bad: list[dict] = []
    filters = next((r.result["filters"] for r in recs if r.inv.f == "watch-start"), [])
    seen: set = set()
    last_rev = 0
    floor = ref["from"]        # below it the reference knows nothing
    expect_from = None         # a resumed stream must continue here
    progress = 0
    delivered: dict[int, list] = {}
    for r in recs:
        v = r.result
        if r.inv.f == "watch-start":
            expect_from = v["from"]
            continue
        if r.inv.f != "watch-resp":
            continue
        evs = v["events"]
        if v.get("compact"):
            floor = max(floor, v["compact"])
            expect_from = None
        if not evs and not v["created"] and not v["canceled"] and not v.get("compact"):
            progress = max(progress, v["rev"])   # a progress notification
        for ev in evs:
            rev, key = ev[0], ev[2]
            where = f"watcher {wid} event {rev}/{key}"
            if (rev, key) in seen:
                bad.append({"anomaly": "duplicate event (unique)", "where": where})
            seen.add((rev, key))
            if rev < last_rev:
                bad.append({"anomaly": "event out of order (ordered)", "where": where,
                            "after": last_rev})
            if rev <= progress:
                bad.append({"anomaly": "event at or below a progress notification "
                                       "(bookmarkable)", "where": where, "progress": progress})
            if expect_from is not None and rev < expect_from:
                bad.append({"anomaly": "resumed stream repeated history (resumable)",
                            "where": where, "resumed_from": expect_from})
            last_rev = max(last_rev, rev)
            if ev[1] == DELETE and 1 in filters:  # pb.WatchCreateRequest.NODELETE
                bad.append({"anomaly": "a delete reached a NODELETE watcher (filters)",
                            "where": where})
            bad += _against_reference(ev, by_rev, before, floor, where)
        for rev in {ev[0] for ev in evs}:
            if rev >= floor and rev in by_rev:
                got = {ev[2] for ev in evs if ev[0] == rev}
                want = {e[2] for e in by_rev[rev] if not (e[1] == DELETE and 1 in filters)}
                if got != want:
                    bad.append({"anomaly": "a revision's events split across responses "
                                           "(atomic)", "where": f"watcher {wid} rev {rev}",
                                "got": sorted(got), "want": sorted(want)})
            delivered.setdefault(rev, [])
        expect_from = None
    bad += _gaps(wid, delivered, by_rev, floor, last_rev, filters, recs)
    return bad


def _against_reference(ev, by_rev, before, floor, where) -> list[dict]:
    rev, typ, key, value, create, version, prev = ev
    if rev < floor:
        return []
    ref = next((e for e in by_rev.get(rev, []) if e[2] == key), None)
    if ref is None:
        return [{"anomaly": "event that never happened (reliable)", "where": where, "event": ev}]
    out = []
    if ref[:6] != ev[:6]:
        out.append({"anomaly": "event differs from the reference", "where": where,
                    "event": ev, "reference": ref[:6]})
    if (rev, key) in before:
        was = before[(rev, key)]
        if prev is not None and prev != was:
            out.append({"anomaly": "wrong prev_kv", "where": where, "prev": prev, "was": was})
        if typ == PUT and (create == rev) != (was is None):
            out.append({"anomaly": "is_create wrong (version/create revision)", "where": where,
                        "create_revision": create, "existed_before": was is not None})
    return out


def _gaps(wid, delivered, by_rev, floor, last_rev, filters, recs) -> list[dict]:
    """Every reference event between the watcher's first start and its last
    delivered revision must have reached it (reliable)."""
    starts = [r.result["from"] for r in recs if r.inv.f == "watch-start"]
    if not starts:
        return []
    lo = max(min(starts), floor)
    missing = [rev for rev in sorted(by_rev) if lo <= rev <= last_rev and rev not in delivered
               and not all(e[1] == DELETE and 1 in filters for e in by_rev[rev])]
    if not missing:
        return []
    return [{"anomaly": "events missed (reliable)", "where": f"watcher {wid}",
             "missing_revisions": missing[:20], "count": len(missing)}]
