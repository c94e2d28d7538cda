"""`pyetcdctl check disk` beside fio's etcd WAL profile, on the same directory.

    python bench/check_disk_vs_fio.py [--dir DIR] [--time 10] [--repeat 3] [--out FILE]

Rounds alternate the two (fio first, then the real `pyetcdctl check disk
-w json` command line), so the machine's noise falls on both alike; each
round is one line of JSON, then a summary line with the medians and the
ratio check disk / fio of the fdatasync p50 and p99.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import disk  # noqa: E402


def check_disk(directory: str, seconds: float) -> dict:
    p = subprocess.run([sys.executable, "-m", "pyetcdctl.main", "check", "disk", "--data-dir",
                        directory, "--time", f"{seconds:g}s", "-w", "json"],
                       capture_output=True, text=True, timeout=seconds + 120)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"check disk failed (exit {p.returncode}): {p.stderr[-500:]}")
    return json.loads(p.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=disk.default_dir())
    ap.add_argument("--time", type=float, default=10.0, help="seconds per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    fio = disk.fio_path()
    if not fio:
        print("check_disk_vs_fio: fio is not installed", file=sys.stderr)
        return 2
    lines, runs = [], {"fio": [], "check disk": []}
    for r in range(a.repeat):
        f = disk.run_fio(fio, a.dir, 2300, 1, "fdatasync", a.time)
        c = check_disk(a.dir, a.time)
        for tool, res in (("fio", f), ("check disk", c)):
            rec = {"round": r + 1, "tool": tool, "dir": a.dir, "seconds": a.time,
                   **{k: res[k] for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "syncs_per_s")}}
            runs[tool].append(rec)
            lines.append(rec)
            print(json.dumps(rec), flush=True)
    med = {t: {k: statistics.median(x[k] for x in rs) for k in ("p50_ms", "p99_ms", "syncs_per_s")}
           for t, rs in runs.items()}
    summary = {"summary": med, "ratio_check_disk_over_fio": {
        k: round(med["check disk"][k] / med["fio"][k], 2) for k in ("p50_ms", "p99_ms")}}
    lines.append(summary)
    print(json.dumps(summary))
    if a.out:
        Path(a.out).write_text("".join(json.dumps(x) + "\n" for x in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
