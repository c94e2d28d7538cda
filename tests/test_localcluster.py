"""``pyetcd-cluster``: three members in one command, usable by etcdctl, all
stopped on Ctrl-C."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from pyetcd.testing import etcdctl


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


def test_local_cluster_with_tls(etcdctl35, tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "pyetcd.localcluster", "--tls", "--data-dir",
                          str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "--endpoints=" not in line:
            line = p.stdout.readline()
        flags = line.split()  # --endpoints=... --cacert=... --cert=... --key=...
        assert any(f.startswith("--cacert=") for f in flags), line
        ctl_flags = [f for f in flags if f.startswith("--") and not f.startswith("--endpoints")]
        endpoints = next(f for f in flags if f.startswith("--endpoints=")).split("=", 1)[1]
        assert endpoints.startswith("https://")
        r = etcdctl(etcdctl35, endpoints, *ctl_flags, "put", "secure", "yes")
        assert r.returncode == 0, r.stderr
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)
    assert p.returncode == 0
