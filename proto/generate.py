"""Regenerate pyetcd/pb/ from the .proto sources in proto/.

Usage: python proto/generate.py [--check]

Every ``proto/<package>/<name>.proto`` becomes ``pyetcd/pb/<package>/<name>_pb2.py``
(plus ``_pb2_grpc.py`` when it declares services).  protoc writes absolute
imports (``from mvccpb import kv_pb2``); they are rewritten to
``from pyetcd.pb.mvccpb import kv_pb2`` so the generated code lives inside our
package and never clashes with another installed ``mvccpb``.

``--check`` regenerates into a temporary directory and exits 1 when the
committed code differs (the staleness test runs this).
"""
from __future__ import annotations

import filecmp
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "pyetcd" / "pb"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def _packages() -> list[str]:
    return sorted({p.relative_to(PROTO_DIR).parts[0] for p in proto_files()})


def _rewrite_imports(path: Path, packages: list[str]) -> None:
    text = path.read_text()
    for pkg in packages:
        text = re.sub(rf"^from {pkg} import ", f"from pyetcd.pb.{pkg} import ", text, flags=re.M)
    path.write_text(text)


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc  # test/dev dependency only

    files = [str(p.relative_to(PROTO_DIR)) for p in proto_files()]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}",
            f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    packages = _packages()
    for pkg in packages:
        init = out_dir / pkg / "__init__.py"
        init.write_text(f'"""Generated from proto/{pkg}/ by proto/generate.py; never edit."""\n')
    for py in out_dir.rglob("*_pb2*.py"):
        grpc_file = py.name.endswith("_pb2_grpc.py")
        if grpc_file and "class " not in py.read_text():
            py.unlink()  # no services in this file
            continue
        _rewrite_imports(py, packages)
    (out_dir / "__init__.py").write_text(
        '"""Generated protobuf code (from proto/ by proto/generate.py); never hand-edited."""\n')


def _tree(d: Path) -> dict[str, Path]:
    return {str(p.relative_to(d)): p for p in d.rglob("*.py")}


def main(argv: list[str]) -> int:
    if "--check" in argv:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            new, old = _tree(Path(tmp)), _tree(OUT_DIR)
            stale = sorted(set(new) ^ set(old))
            stale += [n for n in new if n in old and not filecmp.cmp(new[n], old[n], shallow=False)]
            if stale:
                print("stale generated code, run: python proto/generate.py\n  " + "\n  ".join(stale))
                return 1
        return 0
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir(parents=True)
    generate(OUT_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
