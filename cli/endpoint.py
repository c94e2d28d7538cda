"""endpoint health|status|hashkv, defrag and alarm list|disarm."""
from __future__ import annotations

import sys
import time

from pyetcd.client import ClientError
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from .output import human_bytes, table
from .spec import Command, arg

_HEADERS = {"status": ["ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "IS LEARNER",
                       "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX", "ERRORS"],
            "hashkv": ["ENDPOINT", "HASH"],
            "health": ["ENDPOINT", "HEALTH", "TOOK", "ERROR"]}


def _status_row(c, ep) -> list[str]:
    s = c.status()
    return [ep, f"{s.header.member_id:x}", s.version, human_bytes(s.dbSize),
            str(s.leader == s.header.member_id).lower(), str(s.isLearner).lower(),
            str(s.raftTerm), str(s.raftIndex), str(s.raftAppliedIndex), ", ".join(s.errors)]


def _health_row(c, ep) -> list[str]:
    t0 = time.monotonic()
    c.get(b"health")
    alarms = c.alarm_list()
    took = time.monotonic() - t0
    err = "" if not alarms else "Active Alarm(s): " + ", ".join(
        pb.AlarmType.Name(x.alarm) for x in alarms)
    return [ep, "false" if alarms else "true", f"{took * 1000:.3f}ms", err]


def _print_rows(ctl, sub: str, rows) -> None:
    if ctl.args.write_out == "table":
        ctl.out.write(table(_HEADERS[sub], rows))
        return
    for r in rows:
        if sub != "health":
            ctl.p(", ".join(r))
        elif r[1] == "true":
            ctl.p(f"{r[0]} is healthy: successfully committed proposal: took = {r[2]}")
        else:
            print(f"{r[0]} is unhealthy: failed to commit proposal: {r[3]}", file=sys.stderr)


def endpoint(ctl) -> int:
    a = ctl.args
    rows, rc = [], 0
    for ep in ctl.endpoints(a.cluster):
        try:
            with ctl.client(ep) as c:
                if a.sub == "status":
                    rows.append(_status_row(c, ep))
                elif a.sub == "hashkv":
                    rows.append([ep, str(c.hash_kv(a.rev).hash)])
                else:
                    rows.append(_health_row(c, ep))
                    rc = rc or (1 if rows[-1][1] == "false" else 0)
        except ClientError as exc:
            rc = 1
            if a.sub == "health":
                rows.append([ep, "false", "0s", exc.message])
            else:
                print(f"Failed to get the {a.sub} of endpoint {ep} ({exc.message})", file=sys.stderr)
    _print_rows(ctl, a.sub, rows)
    return rc


def defrag(ctl) -> int:
    rc = 0
    for ep in ctl.endpoints(ctl.args.cluster):
        try:
            with ctl.client(ep) as c:
                c.defragment()
            ctl.p(f"Finished defragmenting etcd member[{ep}]")
        except ClientError as exc:
            print(f"Failed to defragment etcd member[{ep}] ({exc.message})", file=sys.stderr)
            rc = 1
    return rc


def alarm(ctl) -> int:
    with ctl.client() as c:
        alarms = c.alarm_list() if ctl.args.sub == "list" else c.alarm_disarm()
    for m in alarms:
        ctl.p(f"memberID:{m.memberID} alarm:{pb.AlarmType.Name(m.alarm)} ")
    return 0


_CLUSTER = arg("--cluster", action="store_true")
COMMANDS = [
    Command(("endpoint", "health"), endpoint, (_CLUSTER,),
            "Checks the healthiness of endpoints specified in `--endpoints` flag"),
    Command(("endpoint", "status"), endpoint, (_CLUSTER,),
            "Prints out the status of endpoints specified in `--endpoints` flag"),
    Command(("endpoint", "hashkv"), endpoint, (_CLUSTER, arg("--rev", type=int, default=0)),
            "Prints the KV history hash for each endpoint in --endpoints"),
    Command(("defrag",), defrag, (_CLUSTER,), "Defragments the storage of the etcd members"),
    Command(("alarm", "list"), alarm, (), "Lists all alarms"),
    Command(("alarm", "disarm"), alarm, (), "Disarms all alarms"),
]
