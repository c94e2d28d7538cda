"""put, get, del, compaction (etcdctl's put/get/del/compaction commands)."""
from __future__ import annotations

import base64
import json
import sys

from pyetcd.util.keys import prefix_end

from .spec import Command, arg


def range_end(key: bytes, end: str | None, prefix: bool) -> bytes:
    if prefix:
        return prefix_end(key)
    return end.encode() if end else b""


def put(ctl) -> int:
    a = ctl.args
    value = a.value if a.value is not None else sys.stdin.read()
    with ctl.client() as c:
        resp = c.put(a.key.encode(), value.encode(), lease=int(a.lease, 16), prev_kv=a.prev_kv)
    if a.write_out == "json":
        ctl.p(json.dumps({"header": ctl.header_json(resp.header)}))
    else:
        ctl.p("OK")
        if a.prev_kv and resp.HasField("prev_kv"):
            ctl.p(resp.prev_kv.key.decode(errors="replace"))
            ctl.p(resp.prev_kv.value.decode(errors="replace"))
    return 0


def get(ctl) -> int:
    a = ctl.args
    key = a.key.encode()
    with ctl.client() as c:
        resp = c.get(key, range_end(key, a.range_end, a.prefix), revision=a.rev,
                     keys_only=a.keys_only, limit=a.limit, serializable=a.consistency == "s")
    if a.write_out == "json":
        d = {"header": ctl.header_json(resp.header), "count": resp.count}
        kvs = [{"key": base64.b64encode(kv.key).decode(), "create_revision": kv.create_revision,
                "mod_revision": kv.mod_revision, "version": kv.version,
                "value": base64.b64encode(kv.value).decode()} for kv in resp.kvs]
        if kvs:
            d["kvs"] = kvs
        ctl.p(json.dumps(d, separators=(",", ":")))
        return 0
    for kv in resp.kvs:
        if not a.print_value_only:
            ctl.p(kv.key.decode(errors="replace"))
        if not a.keys_only:
            ctl.p(kv.value.decode(errors="replace"))
    return 0


def delete(ctl) -> int:
    a = ctl.args
    key = a.key.encode()
    with ctl.client() as c:
        resp = c.delete(key, range_end(key, a.range_end, a.prefix), prev_kv=a.prev_kv)
    ctl.p(str(resp.deleted))
    for kv in resp.prev_kvs:
        ctl.p(kv.key.decode(errors="replace"))
        ctl.p(kv.value.decode(errors="replace"))
    return 0


def compaction(ctl) -> int:
    with ctl.client() as c:
        c.compact(ctl.args.revision, ctl.args.physical)
    ctl.p(f"compacted revision {ctl.args.revision}")
    return 0


COMMANDS = [
    Command(("put",), put, (arg("key"), arg("value", nargs="?"), arg("--lease", default="0"),
                            arg("--prev-kv", action="store_true")),
            "Puts the given key into the store"),
    Command(("get",), get, (arg("key"), arg("range_end", nargs="?"),
                            arg("--prefix", action="store_true"),
                            arg("--rev", type=int, default=0),
                            arg("--keys-only", action="store_true"),
                            arg("--print-value-only", action="store_true"),
                            arg("--limit", type=int, default=0),
                            arg("--consistency", default="l")),
            "Gets the key or a range of keys"),
    Command(("del",), delete, (arg("key"), arg("range_end", nargs="?"),
                               arg("--prefix", action="store_true"),
                               arg("--prev-kv", action="store_true")),
            "Removes the specified key or range of keys [key, range_end)"),
    Command(("compaction",), compaction, (arg("revision", type=int),
                                          arg("--physical", action="store_true")),
            "Compacts the event history in etcd"),
]
