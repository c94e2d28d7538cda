"""A pytest plugin for projects that use etcd: real members on loopback for
your tests, pyetcd by default or any etcd binary.

Installed with pyetcd (the ``pytest11`` entry point), so in any project::

    def test_my_app_stores_its_config(etcd_server):
        import etcd3
        client = etcd3.client(port=etcd_server.port)
        client.put("/app/mode", "blue")
        assert client.get("/app/mode")[0] == b"blue"

Fixtures:

- ``etcd_server``: one member, started for the test and stopped after it
  (``.endpoint`` "127.0.0.1:port", ``.port``, ``.url``, ``.client()`` a
  :class:`pyetcd.client.Client`, ``.pid``, ``.log()``);
- ``etcd_cluster``: three members (``.members``, ``.endpoints``,
  ``.client()``); ``etcd_cluster_factory(n, extra=...)`` for other sizes
  and flags.

``--etcd-server KIND`` (or ``PYETCD_TEST_SERVER``) picks the server for the
whole run: ``pyetcd`` (default), ``etcd``/``etcd3.5``, ``etcd3.4`` or the path
of an etcd binary.  When a test fails, the members' logs are added to its
report; the members are killed by the PIDs the fixture started.
"""
from __future__ import annotations

import os

import pytest

from .procs import LocalCluster, Server, logs_of

_REPORT_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("pyetcd")
    group.addoption("--etcd-server", default=None, metavar="KIND",
                    help="server for the etcd_server/etcd_cluster fixtures: pyetcd (default), "
                         "etcd, etcd3.4, etcd3.5 or the path of an etcd binary")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    item.stash.setdefault(_REPORT_KEY, {})[rep.when] = rep


def _kind(config) -> str:
    return config.getoption("--etcd-server") or os.environ.get("PYETCD_TEST_SERVER") or "pyetcd"


def _failed(request) -> bool:
    reports = request.node.stash.get(_REPORT_KEY, {})
    return any(r.failed for r in reports.values())


class _Member:
    """What a test sees of one member."""

    def __init__(self, server: Server):
        self.server = server
        self.endpoint = server.endpoint
        self.port = server.client_port
        self.url = server.url
        self.name = server.name

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def log(self) -> str:
        return self.server.log()

    def client(self, **kw):
        from pyetcd.client import Client
        return Client(self.endpoint, **kw)


class _Cluster:
    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster
        self.members = [_Member(m) for m in cluster.members]
        self.endpoints = cluster.endpoints

    def client(self, **kw):
        from pyetcd.client import Client
        return Client(self.endpoints, **kw)


def _finish(request, servers) -> None:
    if _failed(request):
        request.node.add_report_section("teardown", "etcd member logs", logs_of(servers))
    for s in servers:
        s.stop()


@pytest.fixture
def etcd_server(request, tmp_path_factory):
    """One member on loopback for this test."""
    s = Server(_kind(request.config), tmp_path_factory.mktemp("etcd-server"))
    try:
        s.start()
        yield _Member(s)
    finally:
        _finish(request, [s])


@pytest.fixture
def etcd_cluster_factory(request, tmp_path_factory):
    """``make(n=3, extra=())``: a cluster of n members for this test."""
    made: list[LocalCluster] = []

    def make(n: int = 3, extra=()) -> _Cluster:
        c = LocalCluster(_kind(request.config), tmp_path_factory.mktemp("etcd-cluster"), n=n,
                         extra=list(extra))
        made.append(c)
        c.start()
        return _Cluster(c)

    try:
        yield make
    finally:
        _finish(request, [m for c in made for m in c.members])


@pytest.fixture
def etcd_cluster(etcd_cluster_factory):
    """Three members on loopback for this test."""
    return etcd_cluster_factory(3)
