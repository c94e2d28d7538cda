"""The members under test: started with etcd's flags through
:mod:`pyetcd.testing` (pyetcd, real etcd or any executable that takes
etcd's flags), on loopback or each in its own network namespace
(:mod:`.net`) when links are to be cut, optionally on a filesystem that
loses unsynced writes (:mod:`.lazyfs`).  Process faults act on the PIDs
started here."""
from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.testing import Server, free_port

from .client import EtcdClient, Indeterminate, Refused
from .net import Network
from .nemesis.clock import clock_env, shim_path

TOKEN = "jepsen-lite"
START_TIMEOUT = 30.0
TMPFS_MB = 512


class Member:
    def __init__(self, index: int, server: Server, peer_url: str):
        self.index = index
        self.server = server
        self.peer_url = peer_url
        self.paused = False
        self.id = 0          # etcd's member id, learned from the cluster

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def running(self) -> bool:
        p = self.server.proc
        return p is not None and p.poll() is None


class Cluster:
    def __init__(self, kind: str, n: int, workdir: Path, *, netns: bool = False,
                 flags=(), env=None, lazy: bool = False, clock: bool = False,
                 tmpfs: bool = False):
        self.kind = kind
        self.workdir = Path(workdir)
        self.flags = list(flags)
        self.clock_files: list[Path] = []
        self.tmpfs: list[Path] = []
        self.net = Network(n) if netns else None
        self.members: list[Member] = []
        self.mounts = [self._mount(i) for i in range(n)] if lazy else []
        for i in range(n):
            name = f"m{i}"
            if self.net is not None:
                host, cport, pport, ns = self.net.member_ip(i), 2379, 2380, self.net.ns[i]
            else:
                host, cport, pport, ns = "127.0.0.1", free_port(), free_port(), None
            data_dir = Path(self.mounts[i].mountpoint) / f"{name}.etcd" if lazy else None
            if tmpfs and not lazy:
                data_dir = self._tmpfs(i) / f"{name}.etcd"
            menv = dict(env or {})
            shim = shim_path() if clock else None
            if shim:
                self.clock_files.append(self.workdir / f"clock-{name}")
                menv.update(clock_env(self.clock_files[-1], shim))
            s = Server(kind, self.workdir / name, name=name, extra=self.flags, env=menv,
                       client_port=cport, peer_port=pport, host=host, netns=ns, data_dir=data_dir)
            self.members.append(Member(i, s, s.peer_url))
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.server.cluster_args = ["--initial-advertise-peer-urls", m.peer_url,
                                     "--initial-cluster", initial, "--initial-cluster-token", TOKEN,
                                     "--initial-cluster-state", "new"]

    def _mount(self, i: int):
        """Member i's data dir on a filesystem that loses unsynced writes."""
        from .lazyfs import Mount
        log = open(self.workdir / f"lazyfs-m{i}.log", "ab")
        m = Mount(self.workdir / f"lazy-src-m{i}", self.workdir / f"lazy-mnt-m{i}", log)
        m.start()
        return m

    def _tmpfs(self, i: int) -> Path:
        """A small filesystem of the tool's own for member i (the disk can fill)."""
        import subprocess
        d = self.workdir / f"tmpfs-m{i}"
        d.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"cannot mount a tmpfs for the disk nemesis: {r.stderr.strip()}")
        self.tmpfs.append(d)
        return d

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self) -> None:
        for m in self.members:
            m.server.start(wait=False)
        for m in self.members:
            m.server.wait_ready(timeout=START_TIMEOUT)
        self.learn_ids()

    def learn_ids(self) -> None:
        for m in self.members:
            try:
                st = self.client(m).status(timeout=2)
                m.id = st.header.member_id
            except (Refused, Indeterminate):
                pass

    def client(self, m: Member, timeout: float = 1.0) -> EtcdClient:
        return EtcdClient(m.endpoint, timeout)

    # ---- process faults ------------------------------------------------------------------
    def kill(self, m: Member) -> None:
        if m.paused:
            self.resume(m)
        m.server.stop(signal.SIGKILL)

    def pause(self, m: Member) -> None:
        if m.running and not m.paused:
            m.server.pause()
            m.paused = True

    def resume(self, m: Member) -> None:
        if m.paused:
            m.server.resume()
            m.paused = False

    def restart(self, m: Member, wait: bool = True) -> bool:
        """Start a stopped member; False when it exits or does not answer."""
        if m.running:
            return True
        m.server.start(wait=False)
        if not wait:
            return True
        try:
            m.server.wait_ready(timeout=START_TIMEOUT)
            return True
        except RuntimeError:
            return False

    def leader(self) -> Member | None:
        for m in self.members:
            if not m.running or m.paused:
                continue
            try:
                st = self.client(m).status(timeout=1)
            except (Refused, Indeterminate):
                continue
            for x in self.members:
                if x.id == st.leader:
                    return x
        return None

    def member_list(self, m: Member) -> list[pb.Member]:
        c = self.client(m, 3.0)
        try:
            return list(c.call(c.cluster.MemberList, pb.MemberListRequest(), False).members)
        finally:
            c.close()

    def wipe(self, m: Member) -> None:
        shutil.rmtree(m.server.data_dir, ignore_errors=True)

    def rejoin_args(self, m: Member, members: list[pb.Member]) -> None:
        """Start ``m`` as a member added to a running cluster."""
        names = {x.peer_url: x.name for x in self.members}
        initial = ",".join(f"{names.get(u, mm.name)}={u}" for mm in members for u in mm.peerURLs)
        m.server.cluster_args = ["--initial-advertise-peer-urls", m.peer_url,
                                 "--initial-cluster", initial, "--initial-cluster-token", TOKEN,
                                 "--initial-cluster-state", "existing"]

    def stop(self) -> None:
        for m in self.members:
            self.resume(m)
            m.server.stop()

    def collect_logs(self, out: Path) -> None:
        for m in self.members:
            if m.server.log_path.exists():
                shutil.copy(m.server.log_path, out / f"{m.name}.log")
        for log in self.workdir.glob("lazyfs-m*.log"):
            shutil.copy(log, out / log.name)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            for mount in self.mounts:
                mount.stop()
            import subprocess
            for d in self.tmpfs:
                subprocess.run(["umount", "-l", str(d)], capture_output=True)
            if self.net is not None:
                self.net.close()

    def wait_healthy(self, timeout: float = 30.0) -> bool:
        """Until every running member answers a linearizable read."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = 0
            for m in self.members:
                if not m.running:
                    continue
                c = self.client(m, 1.0)
                try:
                    c.get(b"health")
                    ok += 1
                except (Refused, Indeterminate):
                    pass
                finally:
                    c.close()
            if ok == sum(1 for m in self.members if m.running):
                return True
            time.sleep(0.2)
        return False
