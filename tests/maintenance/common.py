"""Helpers for the maintenance tests: real tools and pyetcdctl."""
from __future__ import annotations

import os
import subprocess
import sys

from pyetcd.testing import etcdctl_path, etcdutl_path


def offline(tool: str, *args, timeout=60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return subprocess.run([tool, *args], capture_output=True, text=True, env=env, timeout=timeout)


def pyetcdctl(*args, timeout=60, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyetcdctl.main", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def ok(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, (p.args, p.stdout, p.stderr)
    return p.stdout


CTL34 = etcdctl_path("3.4")
CTL35 = etcdctl_path("3.5")
ETCDUTL = etcdutl_path()
