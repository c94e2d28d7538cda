"""pyetcd.testing's pytest plugin, as a project using etcd sees it: a test
file that asks for ``etcd_server`` / ``etcd_cluster`` gets live members, a
failing test gets their logs in its report, and every member is stopped."""
from __future__ import annotations

import os
import subprocess
import sys

pytest_plugins = ["pytester"]

USER_TESTS = '''
import etcd3

def test_put_get(etcd_server):
    client = etcd3.client(port=etcd_server.port)
    client.put("/app/mode", "blue")
    assert client.get("/app/mode")[0] == b"blue"
    with open("pids", "a") as f:
        f.write(f"{etcd_server.pid}\\n")

def test_cluster_has_three_started_members(etcd_cluster):
    client = etcd3.client(port=etcd_cluster.members[1].port)
    assert sorted(m.name for m in client.members) == ["m0", "m1", "m2"]
    with open("pids", "a") as f:
        f.write("".join(f"{m.pid}\\n" for m in etcd_cluster.members))

def test_failure_shows_the_logs(etcd_server):
    with open("pids", "a") as f:
        f.write(f"{etcd_server.pid}\\n")
    assert False, "deliberate"
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_fixtures_in_a_users_project(pytester, monkeypatch):
    # etcd3's generated code needs the pure-Python protobuf runtime
    monkeypatch.setenv("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    pytester.makepyfile(test_app=USER_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "etcd member logs" in out and "ready to serve client requests" in out
    pids = [int(p) for p in (pytester.path / "pids").read_text().split()]
    assert len(pids) == 5 and not any(_alive(p) for p in pids)


def test_server_kind_option_selects_real_etcd(pytester, etcd35):
    pytester.makepyfile(test_kind='''
def test_version(etcd_server):
    with etcd_server.client() as c:
        assert c.status().version.startswith("3.5.1")
''')
    result = pytester.runpytest_subprocess("-q",
                                           "--etcd-server", "etcd")
    result.assert_outcomes(passed=1)


def test_plugin_is_registered_with_pytest():
    out = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True,
                         text=True).stdout
    assert "--etcd-server=KIND" in out
