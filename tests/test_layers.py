"""The layering of ARCHITECTURE.md: an import may only point down.

Each package lists the pyetcd packages it may import.  The test reads every
module's imports (statically, with ast) and fails on an upward import, so a
wrong dependency breaks CI instead of the design."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ALLOWED = {
    "pyetcd.pb": {"pyetcd.pb"},
    "pyetcd.raft": {"pyetcd.raft", "pyetcd.pb"},  # only raft/codec.py may use pb (checked below)
    "pyetcd.storage": {"pyetcd.storage", "pyetcd.pb", "pyetcd.raft"},
    "pyetcd.lease": {"pyetcd.lease", "pyetcd.pb", "pyetcd.storage"},
    "pyetcd.auth": {"pyetcd.auth", "pyetcd.pb", "pyetcd.storage", "pyetcd.errors"},
    "pyetcd.mvcc": {"pyetcd.mvcc", "pyetcd.pb", "pyetcd.storage"},
    "pyetcd.server": {"pyetcd.server", "pyetcd.mvcc", "pyetcd.lease", "pyetcd.auth",
                      "pyetcd.storage", "pyetcd.raft", "pyetcd.pb", "pyetcd.errors",
                      "pyetcd.version", "pyetcd.peer"},
    "pyetcd.peer": {"pyetcd.peer", "pyetcd.raft", "pyetcd.pb", "pyetcd.errors"},
    "pyetcd.api": {"pyetcd.api", "pyetcd.server", "pyetcd.lease", "pyetcd.mvcc", "pyetcd.auth",
                   "pyetcd.pb", "pyetcd.errors", "pyetcd.version"},
    "pyetcd.client": {"pyetcd.client", "pyetcd.pb", "pyetcd.errors", "pyetcd.version"},
    "pyetcdctl": {"pyetcd.client", "pyetcd.pb", "pyetcd.errors", "pyetcd.version", "pyetcdctl", "pyetcd.certs",
                  "pyetcd.storage", "pyetcd.mvcc"},  # offline snapshot tools read the backend
}
FOLDERS = {"pyetcdctl": ROOT / "cli"}


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts
    if parts[0] == "cli":
        return "pyetcdctl"
    return ".".join(parts[:2])


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _top(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] == "pyetcd" and len(parts) > 1:
        return ".".join(parts[:2])
    if parts[0] == "pyetcdctl":
        return "pyetcdctl"
    return None


def test_imports_point_down():
    bad = []
    files = list((ROOT / "pyetcd").rglob("*.py")) + list((ROOT / "cli").rglob("*.py"))
    for f in files:
        pkg = _package_of(f)
        if pkg not in ALLOWED:
            continue
        for name in _imports(f):
            top = _top(name)
            if top is not None and top not in ALLOWED[pkg]:
                bad.append(f"{f.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_only_storage_imports_lmdb():
    offenders = [str(f.relative_to(ROOT)) for f in (ROOT / "pyetcd").rglob("*.py")
                 if "lmdb" in set(_imports(f)) and _package_of(f) != "pyetcd.storage"]
    assert not offenders


def test_raft_core_is_pure():
    forbidden = {"asyncio", "time", "os", "socket", "threading", "random", "grpc", "lmdb"}
    bad = []
    for f in (ROOT / "pyetcd" / "raft").rglob("*.py"):
        for name in _imports(f):
            root = name.split(".")[0]
            if root in forbidden and not (root == "random" and f.name in ("config.py",)):
                bad.append(f"{f.name} imports {name}")
            if name.startswith("pyetcd.pb") and f.name != "codec.py":
                bad.append(f"{f.name} imports {name} (only codec.py may)")
    assert not bad, bad
