"""snapshot save|status|restore (save over the wire; status and restore
offline, on pyetcd's code for etcd's bbolt format: pyetcd.offline)."""
from __future__ import annotations

import json
import os
import sys
import time

from pyetcd.offline import RestoreError, restore, snapshot_status

from .output import human_bytes, table
from .spec import Command, arg


def save(ctl) -> int:
    eps = ctl.endpoint_list()
    if len(eps) != 1:
        raise SystemExit(f"Error: snapshot must be requested to one selected node, not multiple {eps}")
    with ctl.client() as c:
        c.save_snapshot(ctl.args.path)
    ctl.p(f"Snapshot saved at {ctl.args.path}")
    return 0


def status(ctl) -> int:
    st = snapshot_status(ctl.args.path)
    w = ctl.args.write_out
    if w == "json":
        ctl.p(st.to_json())
    elif w == "table":
        ctl.out.write(table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
                            [[f"{st.hash:x}", str(st.revision), str(st.total_key),
                              human_bytes(st.total_size)]]))
    elif w == "fields":
        ctl.p(f'"Hash" : {st.hash}\n"Revision" : {st.revision}\n"Keys" : {st.total_key}\n'
              f'"Size" : {st.total_size}')
    else:
        ctl.p(f"{st.hash:x}, {st.revision}, {st.total_key}, {human_bytes(st.total_size)}")
    return 0


def restore_(ctl) -> int:
    a = ctl.args
    if a.wal_dir:
        print("Error: --wal-dir is not supported yet: pyetcd keeps the WAL in <data-dir>/member/wal",
              file=sys.stderr)
        return 1
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


COMMANDS = [
    Command(("snapshot", "save"), save, (arg("path"),), "Stores an etcd node backend snapshot"),
    Command(("snapshot", "status"), status, (arg("path"),),
            "Gets backend snapshot status of a given file"),
    Command(("snapshot", "restore"), restore_, (
        arg("path"), arg("--name", default="default"), arg("--data-dir", default=""),
        arg("--wal-dir", default=""),
        arg("--initial-cluster", default="default=http://localhost:2380"),
        arg("--initial-cluster-token", default="etcd-cluster"),
        arg("--initial-advertise-peer-urls", default="http://localhost:2380"),
        arg("--skip-hash-check", action="store_true"),
        arg("--bump-revision", type=int, default=0),
        arg("--mark-compacted", action="store_true")),
        "Restores an etcd member snapshot to an etcd directory"),
]
