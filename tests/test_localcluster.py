"""``pyetcd-cluster``: three members in one command, usable by etcdctl, all
stopped on Ctrl-C."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from tests.procs import etcdctl


def test_local_cluster_up_and_down(etcdctl35, tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "pyetcd.localcluster", "--data-dir", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        endpoints = None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            lines.append(line)
            if "--endpoints=" in line:
                endpoints = line.split("--endpoints=")[1].split()[0]
                break
        assert endpoints, "".join(lines)
        r = etcdctl(etcdctl35, endpoints, "member", "list", "-w", "table")
        assert r.returncode == 0 and all(f"m{i}" in r.stdout for i in range(3)), r.stderr
        assert etcdctl(etcdctl35, endpoints, "put", "x", "1").returncode == 0
        r = etcdctl(etcdctl35, endpoints, "endpoint", "health", "--cluster")
        assert r.returncode == 0 and (r.stdout + r.stderr).count("is healthy") == 3
    finally:
        p.send_signal(signal.SIGINT)
        out = p.communicate(timeout=60)[0]
    assert p.returncode == 0 and "stopped." in out
    for ep in endpoints.split(","):  # every member is gone
        host, port = ep.split(":")
        with socket.socket() as s:
            assert s.connect_ex((host, int(port))) != 0
