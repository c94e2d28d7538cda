"""bench/: the harness cannot rot.  Its parsers and histograms on known
inputs, `pyetcdctl check disk`, and a smoke run of the side-by-side runner
against pyetcd and real etcd 3.5 (a few seconds per row; never a speed
assertion: only that every row ran, without errors, and the report and its
plots were written)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench import disk, etcdbench
from bench.servers import FLOOR_WORKLOADS
from bench.hdr import Histogram

ROOT = Path(__file__).resolve().parent.parent

# etcd's tools/benchmark 3.4.23 (`--precise put --total=200`) against etcd 3.5.1
ETCD_BENCHMARK_OUT = """\
 200 / 200  100.00% 0s

Summary:
  Total:\t0.170482145 secs.
  Slowest:\t0.036552495 secs.
  Fastest:\t0.000283091 secs.
  Average:\t0.0017010984200000003 secs.
  Stddev:\t0.003717280695135288 secs.
  Requests/sec:\t1173.1433810854503

Response time histogram:
  0.000283091 [1]\t|
  0.0039100314 [189]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎
  0.036552495 [2]\t|

Latency distribution:
  10% in 0.000480926 secs.
  50% in 0.00102782 secs.
  90% in 0.002630054 secs.
  99% in 0.036191808 secs.
"""


def test_histogram_percentiles_within_its_resolution():
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(-7, 1.2) for _ in range(20_000))
    h = Histogram()
    for v in values:
        h.record(v)
    for q in (50, 90, 99, 99.9):
        exact = values[min(len(values) - 1, int(len(values) * q / 100))]
        got = h.percentile(q)
        assert abs(got - exact) <= exact / 32 + 2e-6, (q, got, exact)
    assert h.percentile(100) >= values[-1] * (1 - 1 / 32)
    s = h.summary()
    assert s["count"] == 20_000 and s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]


def test_histogram_merge_and_round_trip():
    a, b = Histogram(), Histogram()
    for i in range(1, 1001):
        (a if i % 2 else b).record(i / 1e5)
    merged = Histogram.from_dict(json.loads(json.dumps(a.to_dict()))).merge(b)
    assert merged.summary()["count"] == 1000
    assert abs(merged.percentile(50) - 0.005) < 0.005 / 32 + 1e-6
    assert merged.cdf()[-1][1] == pytest.approx(1.0)


def test_etcd_benchmark_summary_is_parsed():
    res = etcdbench.parse("noise\n" + ETCD_BENCHMARK_OUT)
    assert res["rps"] == 1173.1
    lat = res["latency"]
    assert lat["p50_ms"] == 1.028 and lat["p99_ms"] == 36.192 and lat["max_ms"] == 36.552
    assert lat["p999_ms"] is None   # fewer than 1,000 requests: the tool prints none
    assert etcdbench.parse("Error: context deadline exceeded") is None
    assert res["errors"] == 0
    # the tool's error distribution (how a server's error answers show)
    bad = etcdbench.parse(ETCD_BENCHMARK_OUT + "\nError distribution:\n  [7]\trpc error: code = "
                          "Unknown desc = boom\n  [2]\trpc error: code = Unavailable\n")
    assert bad["errors"] == 9
    assert bad["error_kinds"] == {"rpc error: code = Unknown desc = boom": 7,
                                  "rpc error: code = Unavailable": 2}


def test_etcd_benchmark_commands_match_the_tool():
    argv = etcdbench.command("/x/benchmark", ["127.0.0.1:1"], "put",
                             {"key_size": 8, "val_size": 256, "key_space": 1000}, 2, 16, 500)
    assert argv[:5] == ["/x/benchmark", "--endpoints=127.0.0.1:1", "--conns=2", "--clients=16",
                        "--precise"]
    assert "put" in argv and "--total=500" in argv and "--val-size=256" in argv
    # workloads the tool does not have get no command (the report shows "-")
    assert etcdbench.command("/x/benchmark", ["a:1"], "k8s", {}, 1, 1, 10) is None


def test_fio_etcd_profile_runs_and_is_parsed(tmp_path):
    assert disk.fio_path(), "fio is needed (Debian's fio; .ci/run installs it)"
    row = disk.run_fio(disk.fio_path(), str(tmp_path), 2300, 1, "fdatasync", 0.5)
    # one fdatasync per write; fio's timer can stop the job between the last write and
    # its sync, so that one write may go unsynced (CI saw 4849 writes, 4848 syncs)
    assert row["syncs"] > 0 and row["syncs"] <= row["records"] <= row["syncs"] + 1
    assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["mb_per_s"] > 0
    assert os.listdir(tmp_path) == []   # its test file is removed


def test_check_disk_prints_percentiles_and_a_verdict(tmp_path):
    ctl = [sys.executable, "-m", "pyetcdctl.main"]
    p = subprocess.run([*ctl, "check", "disk", "--data-dir", str(tmp_path), "--time", "1s",
                        "-w", "json"], capture_output=True, text=True, timeout=120)
    assert p.returncode in (0, 1), p.stderr
    res = json.loads(p.stdout)
    assert res["record_size"] == 2300 and res["records_per_sync"] == 1
    assert res["syncs"] > 0 and 0 < res["p50_ms"] <= res["p99_ms"]
    assert res["pass"] == (res["p99_ms"] < 10) and p.returncode == (0 if res["pass"] else 1)
    assert os.listdir(tmp_path) == []   # the scratch WAL is removed
    p = subprocess.run([*ctl, "check", "disk", "--data-dir", str(tmp_path), "--time", "1s"],
                       capture_output=True, text=True, timeout=120)
    assert p.stdout.strip().splitlines()[-1] in ("PASS", "FAIL")
    assert "99th percentile fdatasync is" in p.stdout
    p = subprocess.run([*ctl, "check", "disk", "--time", "soon"], capture_output=True, text=True)
    assert p.returncode == 128 and 'invalid argument "soon" for "--time" flag' in p.stderr
    assert "Traceback" not in p.stderr
    p = subprocess.run([*ctl, "check", "disk", "--data-dir", str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "no such directory" in p.stderr and "Traceback" not in p.stderr


def test_smoke_run_side_by_side_with_etcd(tmp_path):
    out = tmp_path / "report"
    p = subprocess.run([sys.executable, "-m", "bench", "run", "--servers", "pyetcd,etcd3.5,floor",
                        "--members", "1", "--profile", "smoke", "--out", str(out),
                        "--disk-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    meta = records[0]
    assert meta["kind"] == "meta" and meta["profile"] == "smoke"
    loads = [r for r in records if r["kind"] == "load"]
    rows = {r["row"] for r in loads}
    for server in ("pyetcd", "etcd3.5", "floor"):
        mine = [r for r in loads if r["server"] == server]
        assert {r["row"] for r in mine} == (
            rows if server != "floor" else
            {r["row"] for r in loads if r["workload"] in FLOOR_WORKLOADS})
        for r in mine:
            assert r["requests"] > 0 and r["errors"] == 0, (server, r["row"], r["error_kinds"])
            assert r["latency"]["p99_ms"] > 0 and r["server_cpu_s"] >= 0
    for w in ("put", "range", "txn-put", "txn-mixed", "watch", "watch-get", "lease-keepalive",
              "stm", "k8s"):
        assert any(r["workload"] == w for r in loads), w
    tools = {r["tool"] for r in records if r["kind"] == "disk"}
    assert tools == {"fio", "pyetcd-wal", "pyetcd-lmdb"}
    assert any(r["kind"] == "datascale" for r in records)
    report = (out / "report.md").read_text()
    for row in rows:
        assert f"| {row} |" in report
    for png in ("throughput_by_clients", "latency_cdf", "cpu_per_op", "ratio"):
        assert (out / f"{png}.png").stat().st_size > 5000
    p = subprocess.run([sys.executable, "-m", "bench", "report", str(out), "--summary"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    summary = p.stdout.splitlines()
    assert p.returncode == 0 and summary[0].endswith("| pyetcd/etcd3.5 | pyetcd/floor |")
    assert len(summary) == 2 + len(rows)


def _tree(pid: int) -> list[int]:
    out = []
    for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                            text=True).stdout.split():
        out += [int(c), *_tree(int(c))]
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupt_stops_every_server_it_started(tmp_path, sig):
    import signal
    import time
    p = subprocess.Popen([sys.executable, "-m", "bench", "run", "--servers", "pyetcd",
                          "--members", "3", "--profile", "smoke", "--out", str(tmp_path),
                          "--skip", "disk"], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        results, deadline = tmp_path / "results.jsonl", time.monotonic() + 60
        while time.monotonic() < deadline:   # interrupted in its second load row
            if results.exists() and '"put c=1"' in results.read_text():
                break
            time.sleep(0.2)
        started = _tree(p.pid)
        assert len(started) >= 3   # three members (and the generator's workers)
        p.send_signal(getattr(signal, sig))
        assert p.wait(30) == 130
        assert "every server it started is stopped" in p.stderr.read()
        time.sleep(0.5)
        assert not [q for q in started if _alive(q)]
    finally:
        for q in _tree(p.pid):
            os.kill(q, 9)
        p.kill()


def test_profile_summary_attributes_samples_to_layers():
    from bench.profile import parse_folded, summarize
    folded = "\n".join([
        "thread (0x1);main (/x/pyetcd/main.py:10);put (/x/pyetcd/mvcc/kvstore.py:5) 30",
        "thread (0x1);main (/x/pyetcd/main.py:10);_run (/usr/lib/python3.11/asyncio/events.py:80)"
        ";_call (/s/site-packages/grpc/aio/_call.py:7) 50",
        "thread (0x2);_fill (/x/pyetcd/storage/backend.py:9);put (/s/site-packages/lmdb/cffi.py:1) 20",
        "garbage line",
    ])
    s = summarize(parse_folded(folded))
    assert s["samples"] == 100
    own = dict(s["own_by_layer"])
    assert own == {"grpc": 50.0, "pyetcd.mvcc": 30.0, "lmdb": 20.0}
    incl = dict(s["inclusive_by_layer"])
    assert incl["pyetcd.main"] == 80.0 and incl["asyncio/uvloop"] == 50.0
    assert incl["pyetcd.storage"] == 20.0
    assert s["top_own"][0] == ("_call (site-packages/grpc/aio/_call.py)", 50.0)


def test_cores_projection_is_the_lower_bound():
    from bench.cores import projection, render
    # etcd: K x the one-core rate
    assert projection("etcd3.5", 5000, 0, 0, 8) == 40000
    # pyetcd: the member process's own core, or every core over the whole cost
    assert projection("pyetcd-fe2", 3000, 0.02, 0.28, 8) == pytest.approx(8000 / 0.3)
    assert projection("pyetcd-fe2", 3000, 0.02, 0.28, 16) == pytest.approx(50000)
    assert projection("pyetcd-fe2", 3000, 0.1, 0.2, 8) == pytest.approx(10000)
    recs = [{"server": s, "rps": r, "c_m_ms": m, "c_f_ms": f}
            for s, r, m, f in [("etcd3.5", 5000, 0.2, 0), ("etcd3.5", 5200, 0.2, 0),
                               ("pyetcd-fe2", 3000, 0.02, 0.28), ("pyetcd-fe2", 3100, 0.02, 0.28)]]
    text = render(recs, ["etcd3.5", "pyetcd-fe2"], "put c=256", "cmd")
    row = next(ln for ln in text.splitlines() if ln.startswith("| pyetcd-fe2"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4:] == ["26,667", "50,000", "0.65", "0.61"]
