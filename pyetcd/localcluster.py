"""``pyetcd-cluster``: a local N-member cluster in one command.

    pyetcd-cluster                 # 3 members on 127.0.0.1, free ports, temp data dirs
    pyetcd-cluster --size 5 --data-dir ./mycluster   # named, reusable data dirs

Starts the members with etcd's flags (exactly what an operator would type;
the process harness of :mod:`pyetcd.testing`), waits until each answers,
prints the ``--endpoints`` to use, and on Ctrl-C (or SIGTERM) stops every
member it started, by PID.  A data dir that already exists is restarted as
it is (its members keep their ids, ports and data).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from pyetcd.testing import LocalCluster, free_port


def _layout(base: Path, size: int, host: str) -> list[tuple[int, int]]:
    """Member ports, remembered in base/ports so a restart reuses them."""
    f = base / "ports"
    if f.exists():
        rows = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
        return [(int(c), int(p)) for _, c, p in rows]
    ports = [(free_port(host), free_port(host)) for _ in range(size)]
    f.write_text("".join(f"m{i} {c} {p}\n" for i, (c, p) in enumerate(ports)))
    return ports


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyetcd-cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=3, help="number of members (default 3)")
    ap.add_argument("--data-dir", help="keep the members' data here (default: a temp dir, "
                                       "removed on exit)")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    ap.add_argument("--token", default="pyetcd-local-cluster")
    ap.add_argument("--tls", action="store_true",
                    help="mutual TLS for clients and peers (certificates made in <data-dir>/pki)")
    ap.add_argument("extra", nargs="*", help="more pyetcd flags for every member (after --)")
    return ap


def _pki(base: Path, host: str) -> Path:
    pki = base / "pki"
    if not (pki / "ca.crt").exists():
        from pyetcd.certs import create
        create(str(pki), [host], ["localhost"])
    return pki


def _announce(cluster: LocalCluster, base: Path, pki: Path | None) -> None:
    endpoints = ",".join(m.url if pki else m.endpoint for m in cluster.members)
    tls = (f" --cacert={pki}/ca.crt --cert={pki}/client.crt --key={pki}/client.key"
           if pki else "")
    print(f"pyetcd cluster of {len(cluster.members)} members is up (data in {base})")
    print(f"  --endpoints={endpoints}{tls}")
    print(f"  try: etcdctl --endpoints={endpoints}{tls} member list -w table")
    print("Ctrl-C stops every member.", flush=True)


def _watch(cluster: LocalCluster, stopping: list[bool]) -> None:
    """Until Ctrl-C/SIGTERM; a member that exits is reported."""
    running = list(cluster.members)
    while not stopping[0]:
        for m in running:
            if m.proc is not None and m.proc.poll() is not None:
                print(f"member {m.name} exited with {m.proc.returncode}; see {m.log_path}",
                      file=sys.stderr, flush=True)
                running.remove(m)
                break
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    temp = a.data_dir is None
    base = Path(tempfile.mkdtemp(prefix="pyetcd-cluster-")) if temp else Path(a.data_dir)
    base.mkdir(parents=True, exist_ok=True)
    pki = _pki(base, a.host) if a.tls else None
    cluster = LocalCluster("pyetcd", base, token=a.token, extra=a.extra, pki=pki, host=a.host,
                           ports=_layout(base, a.size, a.host), shared_dir=True)
    stopping = [False]

    def stop(*_):
        stopping[0] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        try:
            cluster.start()
        except RuntimeError as exc:
            bad = next((m for m in cluster.members if m.proc is None or m.proc.poll() is not None),
                       cluster.members[0])
            print(f"member {bad.name} did not start ({exc}); see {bad.log_path}", file=sys.stderr)
            return 1
        _announce(cluster, base, pki)
        _watch(cluster, stopping)
        return 0
    finally:
        cluster.stop()
        if temp:
            shutil.rmtree(base, ignore_errors=True)
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
