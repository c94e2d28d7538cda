"""``pyetcdctl check disk``: is this disk fast enough for etcd's WAL?

etcd's hardware guide tells operators to run fio by hand (sequential
2,300-byte writes, fdatasync after each, on the data dir's filesystem) and to
want a 99th percentile fdatasync under 10 ms.  This command runs that
profile on pyetcd's own WAL code (:mod:`pyetcd.offline.diskcheck`), with no
fio needed, in a scratch directory inside ``--data-dir`` that it removes
afterwards, and prints the percentiles and PASS/FAIL.  No server is needed.

    pyetcdctl check disk --data-dir /var/lib/etcd --time 30s
"""
from __future__ import annotations

import json
import os
import sys

from pyetcd.offline import diskcheck
from pyetcd.util.duration import parse_go_duration

from .ctl import EXIT_BAD_ARGS, EXIT_INTERRUPTED, EXIT_INVALID_INPUT
from .spec import Command, arg

BAR_WIDTH = 60


def filesystem_of(path: str) -> tuple[str, str]:
    """(filesystem type, device) of the mount holding ``path``."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                mnt = mnt.replace("\\040", " ")
                inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best[0]):
                    best = (mnt, fstype, dev)
    except OSError:   # no /proc/mounts: the filesystem is reported as "?"
        pass
    return best[1], best[2]


class Bar:
    """etcdctl's progress bar ("Bom !"), drawn on stderr by fraction done."""

    def __init__(self, total: int, out=sys.stderr) -> None:
        self.total, self.out, self.shown = max(1, total), out, -1

    def __call__(self, fraction: float) -> None:
        i = int(fraction * self.total)
        if i == self.shown:
            return
        self.shown = i
        done = BAR_WIDTH * i // self.total
        self.out.write(f"\r {i} / {self.total} B{'o' * max(0, done - 2)}m"
                       f"{' ' * (BAR_WIDTH - done)}! {100.0 * i / self.total:6.2f}%")
        self.out.flush()

    def finish(self) -> None:
        self(1.0)
        self.out.write("\n")
        self.out.flush()


def check_disk(args) -> int:
    try:
        seconds = parse_go_duration(args.time)
    except ValueError as exc:
        print(f'Error: invalid argument "{args.time}" for "--time" flag: {exc}', file=sys.stderr)
        return EXIT_BAD_ARGS
    if seconds <= 0:
        print("Error: --time must be positive", file=sys.stderr)
        return EXIT_INVALID_INPUT
    if args.record_size < 1 or args.per_sync < 1:
        print("Error: --record-size and --records-per-sync must be positive", file=sys.stderr)
        return EXIT_INVALID_INPUT
    directory = os.path.abspath(args.data_dir)
    if not os.path.isdir(directory):
        print(f"Error: {directory}: no such directory", file=sys.stderr)
        return EXIT_INVALID_INPUT
    fstype, dev = filesystem_of(directory)
    as_json = args.write_out == "json"
    if not as_json:
        print(f"Checking {directory} ({fstype} on {dev}) for etcd's WAL: sequential "
              f"{args.record_size}-byte writes, {args.per_sync} per fdatasync, for {args.time}")
    bar = Bar(max(1, int(seconds)))
    try:
        res = diskcheck.wal_profile(directory, record_size=args.record_size,
                                    per_sync=args.per_sync, seconds=seconds, progress=bar)
    except KeyboardInterrupt:
        print("\nInterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    bar.finish()
    s = res.summary()
    limit_ms = diskcheck.WAL_FSYNC_P99_LIMIT * 1000
    ok = s["p99_ms"] is not None and s["p99_ms"] < limit_ms
    if as_json:
        print(json.dumps({"dir": directory, "filesystem": fstype, "device": dev,
                          "record_size": args.record_size, "records_per_sync": args.per_sync,
                          **s, "p99_limit_ms": limit_ms, "pass": ok}))
        return 0 if ok else 1
    print(f"fdatasync latency: p50 {s['p50_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms, "
          f"p99.9 {s['p999_ms']:.3f} ms, max {s['max_ms']:.3f} ms")
    print(f"{s['syncs']} syncs in {s['seconds']:.1f} s: {s['syncs_per_s']:.0f} syncs/s, "
          f"{s['records_per_s']:.0f} records/s, {s['mb_per_s']:.2f} MB/s")
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: 99th percentile fdatasync is {s['p99_ms']:.3f} ms "
          f"(etcd wants under {limit_ms:.0f} ms)")
    print(verdict)
    return 0 if ok else 1


COMMANDS = [
    Command(("check", "disk"), check_disk, (
        arg("--data-dir", default=".", help="a directory on the disk to check (default: .)"),
        arg("--time", default="30s", help="how long to write (a Go duration)"),
        arg("--record-size", type=int, default=2300, help="bytes per WAL record (etcd's: 2300)"),
        arg("--records-per-sync", dest="per_sync", type=int, default=1,
            help="records per fdatasync (group commit)")),
        "Check that the disk is fast enough for etcd's write-ahead log (no fio needed)",
        needs_ctl=False),
]
