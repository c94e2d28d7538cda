"""The same bench run at two commits, one after the other on this machine.

    python bench/compare_commits.py BEFORE AFTER --out DIR -- [python -m bench run args]

Each commit is checked out into a fresh clone of this repository (a temp dir)
and ``python -m bench run ARGS --out DIR/<commit>`` runs there, with that
clone first on PYTHONPATH, so its pyetcd is what the servers run.  Then it
prints both reports' summaries (each side by side with the other servers of
its run: compare the ratios, the machine is shared).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_at(commit: str, args: list[str], out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="bench-commit-") as tmp:
        clone = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", commit], check=True)
        sha = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dest = out / sha
        env = {**os.environ, "PYTHONPATH": str(clone)}
        subprocess.run([sys.executable, "-m", "bench", "run", *args, "--out", str(dest)],
                       cwd=clone, env=env, check=True)
        return dest


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    i = argv.index("--")
    p = argparse.ArgumentParser(prog="bench/compare_commits.py")
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv[:i])
    out = Path(a.out).resolve()
    dirs = [run_at(c, argv[i + 1:], out) for c in (a.before, a.after)]
    for d in dirs:
        print(f"## {d.name}")
        subprocess.run([sys.executable, "-m", "bench", "report", str(d), "--summary"],
                       cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
