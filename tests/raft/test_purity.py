"""The consensus core stays pure: no I/O, no clocks, no global randomness."""
from __future__ import annotations

import ast
from pathlib import Path

import pyetcd.raft

RAFT_DIR = Path(pyetcd.raft.__file__).parent
FORBIDDEN_MODULES = {"asyncio", "time", "os", "socket", "threading", "subprocess",
                     "multiprocessing", "selectors", "io", "pathlib", "datetime"}
ALLOWED_RANDOM_ATTRS = {"Random"}


def _modules():
    return sorted(p for p in RAFT_DIR.glob("*.py") if p.name != "codec.py")


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: stays inside pyetcd.raft
                continue
            names = [node.module or ""]
            if node.module == "random" and any(a.name not in ALLOWED_RANDOM_ATTRS
                                               for a in node.names):
                out.append(f"{path.name}: from random import {[a.name for a in node.names]}")
        else:
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "random" and node.attr not in ALLOWED_RANDOM_ATTRS):
                out.append(f"{path.name}:{node.lineno}: random.{node.attr} (use Config.rng)")
            continue
        for name in names:
            top = name.split(".")[0]
            if top in FORBIDDEN_MODULES:
                out.append(f"{path.name}:{node.lineno}: imports {name}")
            if top == "pyetcd" and not name.startswith("pyetcd.raft"):
                out.append(f"{path.name}:{node.lineno}: imports {name} (outside pyetcd.raft)")
            if top in ("google", "grpc"):
                out.append(f"{path.name}:{node.lineno}: imports {name}")
    return out


def test_core_modules_are_pure():
    mods = _modules()
    assert len(mods) >= 8
    problems = [v for p in mods for v in _violations(p)]
    assert problems == []


def test_codec_only_imports_pb_and_core():
    tree = ast.parse((RAFT_DIR / "codec.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level:
            assert node.module in ("__future__", "pyetcd.pb.pyetcdpb"), node.module


def test_checker_catches_violations(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport random\nx = random.random()\n"
                   "from pyetcd.mvcc import kv\nfrom . import log\n")
    found = _violations(bad)
    assert len(found) == 3, found


def test_package_import_does_not_load_protobuf():
    import subprocess
    import sys
    code = ("import sys, pyetcd.raft; "
            "print(any(m.startswith('google.protobuf') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(RAFT_DIR.parent.parent))
    assert out.stdout.strip() == "False"
