"""watch (etcdctl's watch_command.go): one watcher, simple or JSON output,
etcdctl's cancel messages and exit status."""
from __future__ import annotations

import base64
import json
import os
import sys

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from .ctl import EXIT_INTERRUPTED, BadArgs
from .kv import range_end
from .spec import Command, arg


def _cancel_reason(resp) -> str:
    """The Go client's WatchResponse.Err()."""
    if resp.compact_revision:
        return "etcdserver: mvcc: required revision has been compacted"
    return resp.cancel_reason or "etcdserver: mvcc: required revision is a future revision"


def _event_json(ctl, resp) -> str:
    return json.dumps({"Header": ctl.header_json(resp.header), "Events": [
        {"kv": {"key": base64.b64encode(e.kv.key).decode(),
                "create_revision": e.kv.create_revision,
                "mod_revision": e.kv.mod_revision, "version": e.kv.version,
                "value": base64.b64encode(e.kv.value).decode()},
         **({"type": 1} if e.type == e.DELETE else {})} for e in resp.events],
        "CompactRevision": resp.compact_revision, "Canceled": resp.canceled,
        "Created": resp.created})


def _print(ctl, resp) -> None:
    if resp.canceled:
        print(f"watch was canceled ({_cancel_reason(resp)})", file=sys.stderr)
    if (not resp.events and not resp.canceled and not resp.created
            and not resp.compact_revision and resp.header.revision):
        ctl.p(f"progress notify: {resp.header.revision}")
    if ctl.args.write_out == "json":
        if resp.events:
            ctl.p(_event_json(ctl, resp))
        return
    for e in resp.events:
        ctl.p("PUT" if e.type == e.PUT else "DELETE")
        for kv in ([e.prev_kv] if e.HasField("prev_kv") else []) + [e.kv]:
            ctl.p(kv.key.decode(errors="replace"))
            ctl.p(kv.value.decode(errors="replace"))


def watch(ctl) -> int:
    a = ctl.args
    key = a.key if a.key is not None else os.environ.get("ETCDCTL_WATCH_KEY")
    if key is None:
        raise BadArgs("key is not provided")
    k = key.encode()
    end = a.range_end if a.range_end is not None else os.environ.get("ETCDCTL_WATCH_RANGE_END")
    if a.prefix and end:
        raise BadArgs("unexpected range_end")
    create = pb.WatchCreateRequest(key=k, range_end=range_end(k, end, a.prefix),
                                   start_revision=a.rev, prev_kv=a.prev_kv,
                                   progress_notify=a.progress_notify)
    with ctl.client() as c:
        try:
            for resp in c.watch(create):
                _print(ctl, resp)
                ctl.out.flush()
                if resp.canceled:
                    break
        except KeyboardInterrupt:
            return 130
    print("Error: watch is canceled by the server", file=sys.stderr)
    return EXIT_INTERRUPTED


COMMANDS = [
    Command(("watch",), watch, (arg("key", nargs="?"), arg("range_end", nargs="?"),
                                arg("--prefix", action="store_true"),
                                arg("--rev", type=int, default=0),
                                arg("--prev-kv", action="store_true"),
                                arg("--progress-notify", action="store_true")),
            "Watches events stream on keys or prefixes"),
]
