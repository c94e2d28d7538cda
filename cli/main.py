"""pyetcdctl: etcdctl's global flags, commands and output formats.

Commands: snapshot save|status|restore, put, get, del, compaction, defrag,
alarm list|disarm, member list, endpoint health|status|hashkv.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pyetcd.client import Client, ClientError
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from . import certs
from .output import human_bytes, table


def _duration(text: str) -> float:
    text = text.strip()
    for suffix, mul in (("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix) and text[:-len(suffix)].replace(".", "", 1).isdigit():
            return float(text[:-len(suffix)]) * mul
    return float(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyetcdctl", description="A simple command line client for pyetcd (etcdctl's commands).")
    p.add_argument("--endpoints", default="127.0.0.1:2379")
    p.add_argument("--dial-timeout", default="2s")
    p.add_argument("--command-timeout", default="5s")
    p.add_argument("--cacert")
    p.add_argument("--cert")
    p.add_argument("--key", dest="tls_key")
    p.add_argument("--insecure-transport", default="true")
    p.add_argument("--insecure-skip-tls-verify", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("-w", "--write-out", default="simple", choices=["simple", "json", "table", "fields", "protobuf"])
    p.add_argument("--hex", action="store_true")
    p.add_argument("--debug", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    certs.add_parser(sub)

    snap = sub.add_parser("snapshot").add_subparsers(dest="sub", required=True)
    snap.add_parser("save").add_argument("path")
    snap.add_parser("status").add_argument("path")
    r = snap.add_parser("restore")
    r.add_argument("path")
    r.add_argument("--name", default="default")
    r.add_argument("--data-dir", default="")
    r.add_argument("--wal-dir", default="")
    r.add_argument("--initial-cluster", default="default=http://localhost:2380")
    r.add_argument("--initial-cluster-token", default="etcd-cluster")
    r.add_argument("--initial-advertise-peer-urls", default="http://localhost:2380")
    r.add_argument("--skip-hash-check", action="store_true")
    r.add_argument("--bump-revision", type=int, default=0)
    r.add_argument("--mark-compacted", action="store_true")

    put = sub.add_parser("put")
    put.add_argument("key")
    put.add_argument("value", nargs="?")
    put.add_argument("--lease", default="0")
    put.add_argument("--prev-kv", action="store_true")
    get = sub.add_parser("get")
    get.add_argument("key")
    get.add_argument("range_end", nargs="?")
    get.add_argument("--prefix", action="store_true")
    get.add_argument("--rev", type=int, default=0)
    get.add_argument("--keys-only", action="store_true")
    get.add_argument("--print-value-only", action="store_true")
    get.add_argument("--limit", type=int, default=0)
    get.add_argument("--consistency", default="l")
    d = sub.add_parser("del")
    d.add_argument("key")
    d.add_argument("range_end", nargs="?")
    d.add_argument("--prefix", action="store_true")
    d.add_argument("--prev-kv", action="store_true")
    c = sub.add_parser("compaction")
    c.add_argument("revision", type=int)
    c.add_argument("--physical", action="store_true")
    df = sub.add_parser("defrag")
    df.add_argument("--cluster", action="store_true")
    al = sub.add_parser("alarm").add_subparsers(dest="sub", required=True)
    al.add_parser("list")
    al.add_parser("disarm")
    mem = sub.add_parser("member").add_subparsers(dest="sub", required=True)
    mem.add_parser("list")
    ep = sub.add_parser("endpoint").add_subparsers(dest="sub", required=True)
    for name in ("health", "status", "hashkv"):
        e = ep.add_parser(name)
        e.add_argument("--cluster", action="store_true")
        if name == "hashkv":
            e.add_argument("--rev", type=int, default=0)
    return p


class Ctl:
    def __init__(self, args):
        self.args = args
        self.out = sys.stdout
        self.dial = _duration(args.dial_timeout)
        self.timeout = _duration(args.command_timeout)

    def client(self, endpoint: str | None = None) -> Client:
        a = self.args
        return Client(endpoint or a.endpoints, dial_timeout=self.dial, timeout=self.timeout,
                      cacert=a.cacert, cert=a.cert, key=a.tls_key,
                      insecure_transport=a.insecure_transport.lower() not in ("false", "0"),
                      user=a.user, password=a.password)

    def endpoints(self, cluster: bool) -> list[str]:
        eps = [e for e in self.args.endpoints.split(",") if e]
        if not cluster:
            return eps
        with self.client() as c:
            return [u for m in c.member_list().members for u in m.clientURLs]

    def header_json(self, h) -> dict:
        return {"cluster_id": h.cluster_id, "member_id": h.member_id, "revision": h.revision,
                "raft_term": h.raft_term}

    def p(self, text: str = "") -> None:
        self.out.write(text + "\n")

    # ---- snapshot -----------------------------------------------------------------------
    def snapshot_save(self) -> int:
        eps = [e for e in self.args.endpoints.split(",") if e]
        if len(eps) != 1:
            raise SystemExit(f"Error: snapshot must be requested to one selected node, not multiple {eps}")
        with self.client() as c:
            c.save_snapshot(self.args.path)
        self.p(f"Snapshot saved at {self.args.path}")
        return 0

    def snapshot_status(self) -> int:
        from pyetcd.storage.etcd_snapshot import snapshot_stats
        st = snapshot_stats(self.args.path)
        w = self.args.write_out
        if w == "json":
            self.p(st.to_json())
        elif w == "table":
            self.out.write(table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
                                 [[f"{st.hash:x}", str(st.revision), str(st.total_key),
                                   human_bytes(st.total_size)]]))
        elif w == "fields":
            self.p(f'"Hash" : {st.hash}\n"Revision" : {st.revision}\n"Keys" : {st.total_key}\n'
                   f'"Size" : {st.total_size}')
        else:
            self.p(f"{st.hash:x}, {st.revision}, {st.total_key}, {human_bytes(st.total_size)}")
        return 0

    def snapshot_restore(self) -> int:
        from pyetcd.storage.restore import RestoreError, restore
        a = self.args
        data_dir = a.data_dir or f"{a.name}.etcd"
        start = time.monotonic()
        try:
            info = restore(a.path, name=a.name, initial_cluster=a.initial_cluster,
                           token=a.initial_cluster_token,
                           advertise_peer_urls=[u for u in a.initial_advertise_peer_urls.split(",") if u],
                           data_dir=data_dir, skip_hash_check=a.skip_hash_check,
                           bump_revision=a.bump_revision, mark_compacted=a.mark_compacted)
        except RestoreError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
        log = {"level": "info", "msg": "restored snapshot", "path": a.path,
               "data-dir": data_dir, "snap-dir": os.path.join(data_dir, "member", "snap"),
               "member-id": f"{info['member_id']:x}", "cluster-id": f"{info['cluster_id']:x}",
               "took": f"{time.monotonic() - start:.3f}s"}
        print(json.dumps(log), file=sys.stderr)
        return 0

    # ---- KV -------------------------------------------------------------------------------
    def put(self) -> int:
        a = self.args
        value = a.value if a.value is not None else sys.stdin.read()
        with self.client() as c:
            resp = c.put(a.key.encode(), value.encode(), lease=int(a.lease, 16), prev_kv=a.prev_kv)
        if a.write_out == "json":
            self.p(json.dumps({"header": self.header_json(resp.header)}))
        else:
            self.p("OK")
            if a.prev_kv and resp.HasField("prev_kv"):
                self.p(resp.prev_kv.key.decode(errors="replace"))
                self.p(resp.prev_kv.value.decode(errors="replace"))
        return 0

    def _range_end(self, key: bytes, end: str | None, prefix: bool) -> bytes:
        if prefix:
            k = bytearray(key)
            for i in range(len(k) - 1, -1, -1):
                if k[i] < 0xFF:
                    k[i] += 1
                    return bytes(k[:i + 1])
            return b"\x00"
        return end.encode() if end else b""

    def get(self) -> int:
        a = self.args
        key = a.key.encode()
        with self.client() as c:
            resp = c.get(key, self._range_end(key, a.range_end, a.prefix), revision=a.rev,
                         keys_only=a.keys_only, limit=a.limit, serializable=a.consistency == "s")
        if a.write_out == "json":
            import base64
            d = {"header": self.header_json(resp.header), "count": resp.count}
            kvs = [{"key": base64.b64encode(kv.key).decode(), "create_revision": kv.create_revision,
                    "mod_revision": kv.mod_revision, "version": kv.version,
                    "value": base64.b64encode(kv.value).decode()} for kv in resp.kvs]
            if kvs:
                d["kvs"] = kvs
            self.p(json.dumps(d, separators=(",", ":")))
            return 0
        for kv in resp.kvs:
            if not a.print_value_only:
                self.p(kv.key.decode(errors="replace"))
            if not a.keys_only:
                self.p(kv.value.decode(errors="replace"))
        return 0

    def delete(self) -> int:
        a = self.args
        key = a.key.encode()
        with self.client() as c:
            resp = c.delete(key, self._range_end(key, a.range_end, a.prefix), prev_kv=a.prev_kv)
        self.p(str(resp.deleted))
        for kv in resp.prev_kvs:
            self.p(kv.key.decode(errors="replace"))
            self.p(kv.value.decode(errors="replace"))
        return 0

    def compaction(self) -> int:
        with self.client() as c:
            c.compact(self.args.revision, self.args.physical)
        self.p(f"compacted revision {self.args.revision}")
        return 0

    # ---- maintenance ------------------------------------------------------------------------
    def defrag(self) -> int:
        rc = 0
        for ep in self.endpoints(self.args.cluster):
            try:
                with self.client(ep) as c:
                    c.defragment()
                self.p(f"Finished defragmenting etcd member[{ep}]")
            except ClientError as exc:
                print(f"Failed to defragment etcd member[{ep}] ({exc.message})", file=sys.stderr)
                rc = 1
        return rc

    def alarm(self) -> int:
        with self.client() as c:
            alarms = c.alarm_list() if self.args.sub == "list" else c.alarm_disarm()
        for m in alarms:
            self.p(f"memberID:{m.memberID} alarm:{pb.AlarmType.Name(m.alarm)} ")
        return 0

    def member_list(self) -> int:
        with self.client() as c:
            resp = c.member_list()
        rows = []
        for m in resp.members:
            rows.append([f"{m.ID:x}", "started" if m.name else "unstarted", m.name,
                         ",".join(m.peerURLs), ",".join(m.clientURLs), str(m.isLearner).lower()])
        if self.args.write_out == "table":
            self.out.write(table(["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"], rows))
        else:
            for r in rows:
                self.p(", ".join(r))
        return 0

    def endpoint(self) -> int:
        a = self.args
        eps = self.endpoints(a.cluster)
        rows, rc = [], 0
        for ep in eps:
            try:
                with self.client(ep) as c:
                    if a.sub == "status":
                        s = c.status()
                        rows.append([ep, f"{s.header.member_id:x}", s.version, human_bytes(s.dbSize),
                                     str(s.leader == s.header.member_id).lower(),
                                     str(s.isLearner).lower(), str(s.raftTerm), str(s.raftIndex),
                                     str(s.raftAppliedIndex), ", ".join(s.errors)])
                    elif a.sub == "hashkv":
                        h = c.hash_kv(a.rev)
                        rows.append([ep, str(h.hash)])
                    else:
                        t0 = time.monotonic()
                        c.get(b"health")
                        alarms = c.alarm_list()
                        took = time.monotonic() - t0
                        err = "" if not alarms else "Active Alarm(s): " + ", ".join(
                            pb.AlarmType.Name(x.alarm) for x in alarms)
                        rows.append([ep, "false" if alarms else "true", f"{took * 1000:.3f}ms", err])
                        if alarms:
                            rc = 1
            except ClientError as exc:
                rc = 1
                if a.sub == "health":
                    rows.append([ep, "false", "0s", exc.message])
                else:
                    print(f"Failed to get the {a.sub} of endpoint {ep} ({exc.message})", file=sys.stderr)
        headers = {"status": ["ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "IS LEARNER",
                              "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX", "ERRORS"],
                   "hashkv": ["ENDPOINT", "HASH"],
                   "health": ["ENDPOINT", "HEALTH", "TOOK", "ERROR"]}[a.sub]
        if a.write_out == "table":
            self.out.write(table(headers, rows))
        else:
            for r in rows:
                if a.sub == "health":
                    if r[1] == "true":
                        self.p(f"{r[0]} is healthy: successfully committed proposal: took = {r[2]}")
                    else:
                        print(f"{r[0]} is unhealthy: failed to commit proposal: {r[3]}", file=sys.stderr)
                else:
                    self.p(", ".join(r))
        return rc


_GLOBAL_VALUE = {"--endpoints", "--dial-timeout", "--command-timeout", "--cacert", "--cert",
                 "--key", "--insecure-transport", "--user", "--password", "-w", "--write-out"}
_GLOBAL_BOOL = {"--insecure-skip-tls-verify", "--hex", "--debug"}


def hoist_globals(argv: list[str]) -> list[str]:
    """Global flags may come anywhere (cobra's persistent flags): move them
    before the command for argparse."""
    front, rest = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if name in _GLOBAL_VALUE:
            if "=" in a:
                front.append(a)
            else:
                front.extend(argv[i:i + 2])
                i += 1
        elif name in _GLOBAL_BOOL:
            front.append(a)
        else:
            rest.append(a)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(hoist_globals(argv))
    if args.cmd == "certs":
        return certs.run(args)
    ctl = Ctl(args)
    handlers = {
        ("snapshot", "save"): ctl.snapshot_save, ("snapshot", "status"): ctl.snapshot_status,
        ("snapshot", "restore"): ctl.snapshot_restore, ("put", None): ctl.put,
        ("get", None): ctl.get, ("del", None): ctl.delete, ("compaction", None): ctl.compaction,
        ("defrag", None): ctl.defrag, ("alarm", "list"): ctl.alarm, ("alarm", "disarm"): ctl.alarm,
        ("member", "list"): ctl.member_list, ("endpoint", "health"): ctl.endpoint,
        ("endpoint", "status"): ctl.endpoint, ("endpoint", "hashkv"): ctl.endpoint,
    }
    fn = handlers[(args.cmd, getattr(args, "sub", None))]
    try:
        return fn()
    except ClientError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
