"""pyetcd.testing: etcd members for tests and tools, public and documented.

- :mod:`.procs`: members as processes -- pyetcd or a real etcd binary,
  started with etcd's flags on loopback with ephemeral ports and temp data
  dirs, TLS optional, stopped by PID, logs kept
  (:class:`Server`, :class:`LocalCluster`, :func:`etcdctl`, ...);
- :mod:`.plugin`: a pytest plugin (installed with pyetcd) with the
  ``etcd_server`` and ``etcd_cluster`` fixtures for a project's own tests;
- :mod:`.inprocess`: a cluster of real :class:`~pyetcd.server.server.EtcdServer`
  objects in one event loop, over an in-memory network, with Raft time and
  lease clocks in the test's hands (fast, deterministic server tests).

The tools (bench/, jepsen-lite/, pyetcdctl, ``pyetcd-cluster``) use
:mod:`.procs` only; :mod:`.inprocess` reaches into the server and is for
tests of the server itself.
"""
from .procs import (LocalCluster, Server, etcd_path, etcdctl, etcdctl_path, etcdutl_path,
                    free_port, logs_of, server_command, tls_channel, tls_flags, wait_ready)

__all__ = ["LocalCluster", "Server", "etcd_path", "etcdctl", "etcdctl_path", "etcdutl_path",
           "free_port", "logs_of", "server_command", "tls_channel", "tls_flags", "wait_ready"]
