"""``pyetcd-cluster``: a local N-member cluster in one command.

    pyetcd-cluster                 # 3 members on 127.0.0.1, free ports, temp data dirs
    pyetcd-cluster --size 5 --data-dir ./mycluster   # named, reusable data dirs

Starts the members with etcd's flags (exactly what an operator would type),
waits until each answers, prints the ``--endpoints`` to use, and on Ctrl-C
(or SIGTERM) stops every member it started, by PID.  A data dir that already
exists is restarted as it is (its members keep their ids and data).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def member_argv(name: str, data_dir: Path, host: str, cport: int, pport: int,
                initial: str, token: str, state: str, extra: list[str],
                pki: Path | None = None) -> list[str]:
    sch = "https" if pki else "http"
    argv = [sys.executable, "-m", "pyetcd.main",
            "--name", name, "--data-dir", str(data_dir),
            "--listen-client-urls", f"{sch}://{host}:{cport}",
            "--advertise-client-urls", f"{sch}://{host}:{cport}",
            "--listen-peer-urls", f"{sch}://{host}:{pport}",
            "--initial-advertise-peer-urls", f"{sch}://{host}:{pport}",
            "--initial-cluster", initial, "--initial-cluster-token", token,
            "--initial-cluster-state", state, *extra]
    if pki:
        argv += ["--client-cert-auth", f"--trusted-ca-file={pki}/ca.crt",
                 f"--cert-file={pki}/server.crt", f"--key-file={pki}/server.key",
                 "--peer-client-cert-auth", f"--peer-trusted-ca-file={pki}/ca.crt",
                 f"--peer-cert-file={pki}/peer.crt", f"--peer-key-file={pki}/peer.key"]
    return argv


def wait_ready(host: str, port: int, proc: subprocess.Popen, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _layout(base: Path, size: int, host: str) -> list[tuple[str, int, int]]:
    """Member names and ports, remembered in base/ports so a restart reuses them."""
    f = base / "ports"
    if f.exists():
        rows = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
        return [(n, int(c), int(p)) for n, c, p in rows]
    rows = [(f"m{i}", free_port(host), free_port(host)) for i in range(size)]
    f.write_text("".join(f"{n} {c} {p}\n" for n, c, p in rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pyetcd-cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=3, help="number of members (default 3)")
    ap.add_argument("--data-dir", help="keep the members' data here (default: a temp dir, removed on exit)")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    ap.add_argument("--token", default="pyetcd-local-cluster")
    ap.add_argument("--tls", action="store_true",
                    help="mutual TLS for clients and peers (certificates made in <data-dir>/pki)")
    ap.add_argument("extra", nargs="*", help="more pyetcd flags for every member (after --)")
    a = ap.parse_args(argv)
    temp = a.data_dir is None
    base = Path(tempfile.mkdtemp(prefix="pyetcd-cluster-")) if temp else Path(a.data_dir)
    base.mkdir(parents=True, exist_ok=True)
    rows = _layout(base, a.size, a.host)
    pki = None
    if a.tls:
        pki = base / "pki"
        if not (pki / "ca.crt").exists():
            from pyetcd.certs import create
            create(str(pki), [a.host], ["localhost"])
    sch = "https" if pki else "http"
    initial = ",".join(f"{n}={sch}://{a.host}:{p}" for n, _, p in rows)
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for name, cport, pport in rows:
            log = open(base / f"{name}.log", "ab")
            argv_ = member_argv(name, base / f"{name}.etcd", a.host, cport, pport, initial,
                                a.token, "new", a.extra, pki)
            procs.append((name, subprocess.Popen(argv_, stdout=log, stderr=subprocess.STDOUT,
                                                 start_new_session=True)))
        for (name, cport, _), (_, p) in zip(rows, procs):
            if not wait_ready(a.host, cport, p):
                print(f"member {name} did not start; see {base / (name + '.log')}", file=sys.stderr)
                return 1
        endpoints = ",".join(f"{sch}://{a.host}:{c}" if pki else f"{a.host}:{c}" for _, c, _ in rows)
        tls = (f" --cacert={pki}/ca.crt --cert={pki}/client.crt --key={pki}/client.key"
               if pki else "")
        print(f"pyetcd cluster of {len(rows)} members is up (data in {base})")
        print(f"  --endpoints={endpoints}{tls}")
        print(f"  try: etcdctl --endpoints={endpoints}{tls} member list -w table")
        print("Ctrl-C stops every member.", flush=True)
        while not stopping:
            for name, p in procs:
                if p.poll() is not None:
                    print(f"member {name} exited with {p.returncode}; see {base / (name + '.log')}",
                          file=sys.stderr, flush=True)
                    procs.remove((name, p))
                    break
            time.sleep(0.2)
        return 0
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if temp:
            shutil.rmtree(base, ignore_errors=True)
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
