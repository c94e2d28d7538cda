"""The layering of docs/ARCHITECTURE.md: an import may only point down.

Every module of the project (the pyetcd packages and top-level modules,
pyetcdctl, bench/ and jepsen-lite/) belongs to a layer, and each layer lists
what it may import.  The test reads every module's imports statically (ast)
and fails on an import the table does not allow, or on a private name
(``_x``) imported from another package, so a wrong dependency breaks CI
instead of the design.  tests/ may import anything."""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASE = {"pyetcd.errors", "pyetcd.version", "pyetcd.util", "pyetcd.pb"}
TOOLS = BASE | {"pyetcd.client", "pyetcd.testing", "pyetcd.testing.procs", "pyetcd.certs"}

# layer -> the layers it may import (itself and pyetcd.util always allowed)
ALLOWED = {
    "pyetcd": set(),   # the package's own __init__ (empty)
    "pyetcd.pb": set(),
    "pyetcd.errors": set(),
    "pyetcd.version": set(),
    "pyetcd.util": set(),
    "pyetcd.certs": set(),
    "pyetcd.raft": {"pyetcd.pb"},  # only raft/codec.py may use pb (checked below)
    "pyetcd.storage": {"pyetcd.pb", "pyetcd.raft"},
    "pyetcd.cluster": {"pyetcd.pb", "pyetcd.storage"},
    "pyetcd.offline": {"pyetcd.pb", "pyetcd.storage", "pyetcd.cluster", "pyetcd.raft"},
    "pyetcd.lease": {"pyetcd.pb", "pyetcd.storage"},
    "pyetcd.auth": {"pyetcd.pb", "pyetcd.storage", "pyetcd.errors"},
    "pyetcd.mvcc": {"pyetcd.pb", "pyetcd.storage"},
    "pyetcd.peer": {"pyetcd.raft", "pyetcd.pb", "pyetcd.errors"},
    "pyetcd.client": BASE,
    "pyetcd.server": BASE | {"pyetcd.raft", "pyetcd.storage", "pyetcd.cluster", "pyetcd.offline",
                             "pyetcd.lease", "pyetcd.auth", "pyetcd.mvcc", "pyetcd.peer",
                             "pyetcd.certs"},
    "pyetcd.api": BASE | {"pyetcd.server", "pyetcd.lease", "pyetcd.mvcc", "pyetcd.auth"},
    # the public harness: processes and the client only ...
    "pyetcd.testing": BASE | {"pyetcd.client", "pyetcd.testing.procs"},
    "pyetcd.testing.procs": BASE,
    # ... except the in-process cluster, which is built of real servers
    "pyetcd.testing.inprocess": BASE | {"pyetcd.server", "pyetcd.api", "pyetcd.peer",
                                        "pyetcd.raft", "pyetcd.testing.procs"},
    "pyetcd.main": BASE | {"pyetcd.api", "pyetcd.server", "pyetcd.offline", "pyetcd.storage"},
    # a member's gRPC front-end process: the same composition as the member's
    # (and its local reads: the member's database, read-only)
    "pyetcd.frontend": BASE | {"pyetcd.api", "pyetcd.server", "pyetcd.main", "pyetcd.mvcc",
                               "pyetcd.storage"},
    "pyetcd.localcluster": TOOLS,
    "pyetcdctl": TOOLS | {"pyetcd.offline"},   # snapshot status/restore are offline tools
    "bench": TOOLS | {"jepsen_lite"},   # bench_linearizability times the checker
    "jepsen_lite": TOOLS,
}
# component benchmarks of pure layers, by design below the wire
BENCH_EXCEPTIONS = {"bench/bench_raft.py": {"pyetcd.raft"},
                    "bench/bench_wal.py": {"pyetcd.storage", "pyetcd.raft"},
                    # fio's profiles beside the real WAL and backend (what `check disk` runs)
                    "bench/disk.py": {"pyetcd.offline"},
                    # the do-nothing server: pyetcd's own client-port options, nothing else
                    "bench/floor.py": {"pyetcd.api", "pyetcd.server"}}
FOLDERS = {"cli": "pyetcdctl", "bench": "bench", "jepsen-lite": "jepsen_lite"}


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] in FOLDERS:
        parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer_of(module: str) -> str | None:
    """The longest table entry that is the module or a package above it."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in ALLOWED:
            return name
    return None


def _files() -> list[Path]:
    files = [f for f in (ROOT / "pyetcd").rglob("*.py") if "/pb/" not in str(f)]
    for folder in FOLDERS:
        files += list((ROOT / folder).rglob("*.py"))
    return files


def _imports(path: Path):
    """(imported module, names imported from it, line) for every import."""
    tree = ast.parse(path.read_text())
    package = _module_of(path) if path.name == "__init__.py" else _module_of(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            names = [a.name for a in node.names]
            yield mod, names, node.lineno
            for n in names:  # "from pkg import module" imports pkg.module
                yield f"{mod}.{n}", [], node.lineno


def _project(name: str) -> bool:
    return name.split(".")[0] in ("pyetcd", "pyetcdctl", "bench", "jepsen_lite")


def test_every_module_has_a_layer():
    missing = [str(f.relative_to(ROOT)) for f in _files() if _layer_of(_module_of(f)) is None]
    assert not missing, missing


def test_imports_point_down():
    bad = []
    for f in _files():
        mod = _module_of(f)
        layer = _layer_of(mod)
        allowed = ALLOWED[layer] | {layer} | BENCH_EXCEPTIONS.get(str(f.relative_to(ROOT)), set())
        if layer != "pyetcd.pb":
            allowed |= {"pyetcd.util"}  # the shared helpers import nothing of pyetcd
        for name, _, line in _imports(f):
            if not _project(name):
                continue
            target = _layer_of(name)
            if target == "pyetcd" and name == "pyetcd":  # "from pyetcd import errors"
                continue
            if target not in allowed and not any(target.startswith(a + ".") for a in allowed):
                bad.append(f"{f.relative_to(ROOT)}:{line} ({layer}) imports {name} ({target})")
    assert not bad, "\n".join(bad)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_names_from_other_packages():
    bad = []
    for f in _files():
        layer = _layer_of(_module_of(f))
        for name, names, line in _imports(f):
            if not _project(name) or _layer_of(name) in (layer, None):
                continue
            private = [p for p in names + name.split(".") if _private(p)]
            if private:
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {private} from {name}")
    assert not bad, "\n".join(bad)


def test_nothing_outside_tests_imports_tests():
    bad = [f"{f.relative_to(ROOT)} imports {n}" for f in _files()
           for n, _, _ in _imports(f) if n == "tests" or n.startswith("tests.")]
    assert not bad, bad


def test_only_storage_imports_lmdb():
    offenders = [str(f.relative_to(ROOT)) for f in _files()
                 if any(n == "lmdb" for n, _, _ in _imports(f))
                 and _layer_of(_module_of(f)) != "pyetcd.storage"]
    assert not offenders


def test_raft_core_is_pure():
    forbidden = {"asyncio", "time", "os", "socket", "threading", "random", "grpc", "lmdb"}
    bad = []
    for f in (ROOT / "pyetcd" / "raft").rglob("*.py"):
        for name, _, _ in _imports(f):
            root = name.split(".")[0]
            if root in forbidden and not (root == "random" and f.name in ("config.py",)):
                bad.append(f"{f.name} imports {name}")
            if name.startswith("pyetcd.pb") and f.name != "codec.py":
                bad.append(f"{f.name} imports {name} (only codec.py may)")
    assert not bad, bad


def test_every_package_is_installed():
    """pyproject lists packages by hand (cli/ -> pyetcdctl): none may be missed."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {_module_of(f) for f in _files() if f.name == "__init__.py"}
    found |= {_module_of(f) for f in (ROOT / "pyetcd" / "pb").rglob("__init__.py")}
    found = {m for m in found if m.split(".")[0] in ("pyetcd", "pyetcdctl", "jepsen_lite")}
    assert found - listed == set(), found - listed


def test_architecture_doc_names_every_package():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    packages = {f.parent.name for f in (ROOT / "pyetcd").glob("*/__init__.py")} - {"pb"}
    missing = [p for p in sorted(packages) if not re.search(rf"pyetcd/{p}/", doc)]
    assert not missing, missing
