"""pyetcdctl: etcdctl's global flags, commands and output formats.

Commands: snapshot save|status|restore, put, get, del, watch, lease
grant|revoke|timetolive|list|keep-alive, compaction,
defrag, alarm list|disarm, member list|add|remove|update|promote, endpoint
health|status|hashkv, check perf.
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


def _goq(s: str) -> str:
    """Go's %q for printable text."""
    return json.dumps(s, ensure_ascii=False)


def _bad_connection(exc: ClientError) -> int:
    """etcdctl's ExitBadConnection (exit code 2)."""
    print(f"Error: {exc.message}", file=sys.stderr)
    return 2


class BadArgs(Exception):
    """etcdctl's ExitBadArgs (exit code 128)."""


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
    ma = mem.add_parser("add")
    ma.add_argument("name", nargs="*")
    ma.add_argument("--peer-urls", default="")
    ma.add_argument("--learner", action="store_true")
    mr = mem.add_parser("remove")
    mr.add_argument("id", nargs="*")
    mu = mem.add_parser("update")
    mu.add_argument("id", nargs="*")
    mu.add_argument("--peer-urls", default="")
    mp = mem.add_parser("promote")
    mp.add_argument("id", nargs="*")
    ls = sub.add_parser("lease").add_subparsers(dest="sub", required=True)
    for name in ("grant", "revoke", "timetolive", "keep-alive"):
        lp = ls.add_parser(name)
        lp.add_argument("arg", nargs="*")
        if name == "timetolive":
            lp.add_argument("--keys", action="store_true")
        if name == "keep-alive":
            lp.add_argument("--once", action="store_true")
    ls.add_parser("list")
    w = sub.add_parser("watch")
    w.add_argument("key", nargs="?")
    w.add_argument("range_end", nargs="?")
    w.add_argument("--prefix", action="store_true")
    w.add_argument("--rev", type=int, default=0)
    w.add_argument("--prev-kv", action="store_true")
    w.add_argument("--progress-notify", action="store_true")
    ck = sub.add_parser("check").add_subparsers(dest="sub", required=True)
    cp = ck.add_parser("perf")
    cp.add_argument("--load", default="s")
    cp.add_argument("--prefix", default="/etcdctl-check-perf/")
    cp.add_argument("--auto-compact", action="store_true")
    cp.add_argument("--auto-defrag", action="store_true")
    ep = sub.add_parser("endpoint").add_subparsers(dest="sub", required=True)
    for name in ("health", "status", "hashkv"):
        e = ep.add_parser(name)
        e.add_argument("--cluster", action="store_true")
        if name == "hashkv":
            e.add_argument("--rev", type=int, default=0)
    return p


class Ctl:
    quote = staticmethod(lambda s: _goq(s))

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

    # ---- members (etcdctl's member_command.go and printer_simple.go) ---------------------
    @staticmethod
    def _member_id(args: list[str]) -> int:
        if len(args) != 1:
            raise BadArgs("member ID is not provided")
        try:
            return int(args[0], 16)
        except ValueError:
            raise BadArgs(f"bad member ID arg (strconv.ParseUint: parsing {_goq(args[0])}: "
                          "invalid syntax), expecting ID in Hex") from None

    def member_add(self) -> int:
        a = self.args
        if len(a.name) < 1:
            raise BadArgs("member name not provided")
        if len(a.name) > 1:
            raise BadArgs("too many arguments" + "".join(
                f", did you mean --peer-urls={s}" for s in a.name if s.lower().startswith("http")))
        name = a.name[0]
        urls = [u for u in a.peer_urls.split(",") if u]
        if not urls:
            raise BadArgs("member peer urls not provided")
        with self.client() as c:
            resp = c.member_add(urls, a.learner)
        if a.write_out == "json":
            self.p(json.dumps(self._members_json(resp, member=resp.member)))
            return 0
        learner = " as learner " if resp.member.isLearner else " "
        self.p(f"Member {resp.member.ID:16x} added{learner}to cluster {resp.header.cluster_id:16x}")
        conf = []
        for m in resp.members:
            for u in m.peerURLs:
                conf.append(f"{name if m.ID == resp.member.ID else m.name}={u}")
        self.p()
        self.p(f"ETCD_NAME={_goq(name)}")
        self.p(f"ETCD_INITIAL_CLUSTER={_goq(','.join(conf))}")
        self.p(f"ETCD_INITIAL_ADVERTISE_PEER_URLS={_goq(a.peer_urls)}")
        self.p('ETCD_INITIAL_CLUSTER_STATE="existing"')
        return 0

    def member_remove(self) -> int:
        mid = self._member_id(self.args.id)
        with self.client() as c:
            resp = c.member_remove(mid)
        self.p(f"Member {mid:16x} removed from cluster {resp.header.cluster_id:16x}")
        return 0

    def member_update(self) -> int:
        mid = self._member_id(self.args.id)
        urls = [u for u in self.args.peer_urls.split(",") if u]
        if not urls:
            raise BadArgs("member peer urls not provided")
        with self.client() as c:
            resp = c.member_update(mid, urls)
        self.p(f"Member {mid:16x} updated in cluster {resp.header.cluster_id:16x}")
        return 0

    def member_promote(self) -> int:
        mid = self._member_id(self.args.id)
        with self.client() as c:
            resp = c.member_promote(mid)
        self.p(f"Member {mid:16x} promoted in cluster {resp.header.cluster_id:16x}")
        return 0

    def _members_json(self, resp, member=None) -> dict:
        def m(x):
            d = {"ID": x.ID, "name": x.name, "peerURLs": list(x.peerURLs)}
            if x.clientURLs:
                d["clientURLs"] = list(x.clientURLs)
            if x.isLearner:
                d["isLearner"] = True
            return d
        out = {"header": self.header_json(resp.header)}
        if member is not None:
            out["member"] = m(member)
        out["members"] = [m(x) for x in resp.members]
        return out

    # ---- watch (etcdctl's watch_command.go) ------------------------------------------------
    def watch(self) -> int:
        import base64
        a = self.args
        key = a.key if a.key is not None else os.environ.get("ETCDCTL_WATCH_KEY")
        if key is None:
            raise BadArgs("key is not provided")
        k = key.encode()
        end = a.range_end if a.range_end is not None else os.environ.get("ETCDCTL_WATCH_RANGE_END")
        if a.prefix and end:
            raise BadArgs("unexpected range_end")
        create = pb.WatchCreateRequest(key=k, range_end=self._range_end(k, end, a.prefix),
                                       start_revision=a.rev, prev_kv=a.prev_kv,
                                       progress_notify=a.progress_notify)
        with self.client() as c:
            try:
                for resp in c.watch(create):
                    if resp.canceled:  # the Go client's WatchResponse.Err()
                        why = ("etcdserver: mvcc: required revision has been compacted"
                               if resp.compact_revision else resp.cancel_reason or
                               "etcdserver: mvcc: required revision is a future revision")
                        print(f"watch was canceled ({why})", file=sys.stderr)
                    if (not resp.events and not resp.canceled and not resp.created
                            and not resp.compact_revision and resp.header.revision):
                        self.p(f"progress notify: {resp.header.revision}")
                    for e in resp.events:
                        if a.write_out == "json":
                            continue
                        self.p("PUT" if e.type == e.PUT else "DELETE")
                        for kv in ([e.prev_kv] if e.HasField("prev_kv") else []) + [e.kv]:
                            self.p(kv.key.decode(errors="replace"))
                            self.p(kv.value.decode(errors="replace"))
                    if a.write_out == "json" and resp.events:
                        self.p(json.dumps({"Header": self.header_json(resp.header), "Events": [
                            {"kv": {"key": base64.b64encode(e.kv.key).decode(),
                                    "create_revision": e.kv.create_revision,
                                    "mod_revision": e.kv.mod_revision, "version": e.kv.version,
                                    "value": base64.b64encode(e.kv.value).decode()},
                             **({"type": 1} if e.type == e.DELETE else {})} for e in resp.events],
                            "CompactRevision": resp.compact_revision, "Canceled": resp.canceled,
                            "Created": resp.created}))
                    self.out.flush()
                    if resp.canceled:
                        break
            except KeyboardInterrupt:
                return 130
        print("Error: watch is canceled by the server", file=sys.stderr)
        return 5

    # ---- lease (etcdctl's lease_command.go) -------------------------------------------------
    @staticmethod
    def _lease_id(arg: str) -> int:
        try:
            v = int(arg, 16)
            if not -(1 << 63) <= v < (1 << 63) or arg.lower().startswith(("0x", "+")) or "_" in arg:
                raise ValueError
            return v
        except ValueError:
            raise BadArgs(f"bad lease ID arg (strconv.ParseInt: parsing {_goq(arg)}: invalid syntax), "
                          "expecting ID in Hex") from None

    def lease(self) -> int:
        a = self.args
        sub = a.sub
        if sub == "grant":
            if len(a.arg) != 1:
                raise BadArgs("lease grant command needs TTL argument")
            try:
                ttl = int(a.arg[0], 10)
            except ValueError:
                raise BadArgs(f"bad TTL (strconv.ParseInt: parsing {_goq(a.arg[0])}: invalid syntax)") from None
            with self.client() as c:
                try:
                    resp = c.lease_grant(ttl)
                except ClientError as exc:
                    raise ClientError(exc.code, f"failed to grant lease ({exc.message})") from None
            self.p(f"lease {resp.ID:016x} granted with TTL({resp.TTL}s)")
            return 0
        if sub == "list":
            with self.client() as c:
                try:
                    resp = c.leases()
                except ClientError as exc:
                    return _bad_connection(exc)
            self.p(f"found {len(resp.leases)} leases")
            for item in resp.leases:
                self.p(f"{item.ID:016x}")
            return 0
        what = {"revoke": "lease revoke command needs 1 argument",
                "timetolive": "lease timetolive command needs lease ID as argument",
                "keep-alive": "lease keep-alive command needs lease ID as argument"}[sub]
        if len(a.arg) != 1:
            raise BadArgs(what)
        lid = self._lease_id(a.arg[0])
        with self.client() as c:
            if sub == "revoke":
                try:
                    c.lease_revoke(lid)
                except ClientError as exc:
                    raise ClientError(exc.code, f"failed to revoke lease ({exc.message})") from None
                self.p(f"lease {lid:016x} revoked")
                return 0
            if sub == "timetolive":
                try:
                    resp = c.lease_time_to_live(lid, a.keys)
                except ClientError as exc:
                    return _bad_connection(exc)
                if resp.grantedTTL == 0 and resp.TTL == -1:
                    self.p(f"lease {resp.ID:016x} already expired")
                    return 0
                txt = f"lease {resp.ID:016x} granted with TTL({resp.grantedTTL}s), remaining({resp.TTL}s)"
                if a.keys:
                    txt += f", attached keys([{' '.join(k.decode(errors='replace') for k in resp.keys)}])"
                self.p(txt)
                return 0
            # keep-alive: the Go client renews every TTL/3 and stops when the lease is gone
            try:
                for resp in c.keep_alive(lid, None if a.once else (lambda ttl: max(ttl / 3.0, 0.5))):
                    if resp.TTL <= 0:
                        if a.once:
                            return _bad_connection(ClientError(
                                "NotFound", "etcdserver: requested lease not found"))
                        break
                    self.p(f"lease {resp.ID:016x} keepalived with TTL({resp.TTL})")
                    self.out.flush()
            except ClientError as exc:
                return _bad_connection(exc)
            except KeyboardInterrupt:
                return 130
        if not a.once:
            self.p(f"lease {lid:016x} expired or revoked.")
        return 0

    # ---- check perf ------------------------------------------------------------------------
    def check_perf(self) -> int:
        from .check import check_perf
        return check_perf(self)

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
        ("member", "list"): ctl.member_list, ("member", "add"): ctl.member_add,
        ("member", "remove"): ctl.member_remove, ("member", "update"): ctl.member_update,
        ("member", "promote"): ctl.member_promote, ("watch", None): ctl.watch,
        ("lease", "grant"): ctl.lease, ("lease", "revoke"): ctl.lease,
        ("lease", "timetolive"): ctl.lease, ("lease", "keep-alive"): ctl.lease,
        ("lease", "list"): ctl.lease,
        ("check", "perf"): ctl.check_perf, ("endpoint", "health"): ctl.endpoint,
        ("endpoint", "status"): ctl.endpoint, ("endpoint", "hashkv"): ctl.endpoint,
    }
    fn = handlers[(args.cmd, getattr(args, "sub", None))]
    try:
        return fn()
    except BadArgs as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 128
    except ClientError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
