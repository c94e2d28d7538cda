"""jepsen-lite end to end: a short campaign of every workload (each under a
nemesis) against pyetcd, the same against real etcd as the control, and
campaigns against pyetcd with a deliberate defect (test-only, off by
default: PYETCD_TEST_DEFECTS) that must be caught.  The long campaigns
(a thousand histories) run with --runslow."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SMOKE = [  # (workload, nemesis): every workload, every nemesis family that fits in CI
    ("register", "kill"), ("append", "pause"), ("set", "partition"), ("watch", "member"),
    ("lock", "admin"), ("lease", "kill"), ("register,set", "disk"), ("register", "fuzz"),
    ("set", "clock"),
]


def jepsen(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jepsen_lite", *args], capture_output=True,
                          text=True, timeout=timeout)


def _verdicts(out: Path) -> dict:
    return json.loads((out / "verdicts.json").read_text())


def _run(tmp_path, workload, nemesis, *extra, seconds=15, server="pyetcd"):
    out = tmp_path / "run"
    r = jepsen("run", "--server", server, "--workload", workload, "--nemesis", nemesis,
               "--time", str(seconds), "--rate", "120", "--clients", "8", "--seed", "3",
               "--out", str(out), *extra)
    return r, out


@pytest.mark.parametrize("workload,nemesis", SMOKE, ids=[f"{w}-{n}" for w, n in SMOKE])
def test_smoke(tmp_path, workload, nemesis):
    # 12 s of traffic: the first fault starts within 4.5 s and ends within
    # 10.5 s (quiet 1.5-4.5 s, hold 2-6 s), so every run sees its fault and a
    # heal; the many-fault campaigns are --runslow's
    r, out = _run(tmp_path, workload, nemesis, seconds=12)
    assert r.returncode == 0, r.stdout + r.stderr
    verdicts = _verdicts(out)
    for name in workload.split(","):
        v = verdicts[name]
        assert v["valid"] is True and v["ops"] > 50, (name, v)
    faults = (out / "nemesis.jsonl").read_text()
    assert f'"start-{nemesis}"' in faults and '"healed"' in faults, faults
    assert (out / "report.html").exists() and (out / "timeline.png").exists()
    again = jepsen("check", str(out))
    assert again.returncode == 0 and "INVALID" not in again.stdout, again.stdout


def test_real_etcd_is_the_control(tmp_path, etcd35):
    r, out = _run(tmp_path, "register,append,set,watch,lock,lease", "kill", seconds=20,
                  server="etcd")
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(v["valid"] for v in _verdicts(out).values())
    table = jepsen("summarize", "--side-by-side", str(out)).stdout.splitlines()
    assert table[0] == "| nemesis | workload | etcd |"
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in table[2:]}
    assert set(rows) == {("kill", w) for w in ("register", "append", "set", "watch", "lock",
                                               "lease")}
    assert all(line.endswith("0 anomalies, valid |") for line in rows.values())


def test_stale_reads_are_caught(tmp_path):
    r, out = _run(tmp_path, "register", "partition:isolate-leader", "--server-env",
                  "PYETCD_TEST_DEFECTS=staleReads", seconds=25)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not linearizable" in r.stdout
    assert not _verdicts(out)["register"]["valid"]


@pytest.mark.parametrize("defect", ["skipFsync", "ackBeforeFsync"])
def test_missing_fsync_is_caught_by_power_loss(tmp_path, defect):
    # a member that lost what it acknowledged may never serve again: 15 s of
    # waiting for the healed cluster, not 60, before its final reads judge it
    r, out = _run(tmp_path, "set", "power:all", "--server-env", f"PYETCD_TEST_DEFECTS={defect}",
                  "--heal-wait", "15", seconds=25)
    assert r.returncode == 1, r.stdout + r.stderr
    assert not _verdicts(out)["set"]["valid"]


def test_power_loss_of_every_member_loses_nothing(tmp_path):
    r, out = _run(tmp_path, "set", "power:all", seconds=15)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _verdicts(out)["set"]["acknowledged"] > 0


def test_a_server_that_cannot_run_is_exit_2(tmp_path):
    r = jepsen("run", "--server", str(tmp_path / "no-such-etcd"), "--time", "1",
               "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "jepsen-lite:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("server", ["pyetcd", "etcd"])
def test_long_campaign(tmp_path, server):
    """Many seeds of every workload under a mix of nemeses (--runslow): 167
    seeds of the six workloads are 1,002 histories (about 40 minutes)."""
    seeds = int(os.environ.get("JEPSEN_LITE_SEEDS", "167"))
    r = jepsen("campaign", "--server", server, "--workload", "register,append,set,watch,lock,lease",
               "--nemesis", "kill,pause,partition,member,admin", "--time", "4", "--rate", "120",
               "--clients", "10", "--seed", "1000", "--seeds", str(seeds),
               "--out", str(tmp_path / "c"), timeout=seeds * 120)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]


def test_wall_clock_shim_moves_only_the_wall_clock(tmp_path):
    from jepsen_lite.nemesis.clock import clock_env, shim_path
    shim = shim_path()
    assert shim, "a C compiler is needed (.ci/run installs gcc)"
    spec = tmp_path / "clock"
    env = {**os.environ, **clock_env(spec, shim)}
    probe = ("import time, sys, threading\n"
             "open(sys.argv[1], 'w').write(sys.argv[2] + '\\n'); time.sleep(0.1)\n"
             "w0, m0 = time.time(), time.monotonic(); time.sleep(0.5)\n"
             "c = threading.Condition()\n"
             "with c: c.wait(0.05)\n"
             "print(w0, time.time() - w0, time.monotonic() - m0)\n")
    for text, offset, rate in (("-22s x1", -22, 1.0), ("+8s x1", 8, 1.0), ("+0 x2", 0, 2.0)):
        before = time.time()
        p = subprocess.run([sys.executable, "-c", probe, str(spec), text], env=env,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr   # sleeps and timed waits still work
        wall, wall_span, mono_span = map(float, p.stdout.split())
        assert abs(wall - before - offset) < 2.0, (text, wall - before)
        assert abs(wall_span / mono_span - rate) < 0.15, (text, wall_span, mono_span)
