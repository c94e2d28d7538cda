"""A private network for the members: one network namespace per member, a
hub namespace with a bridge, and one veth from the tool's namespace into
the hub for the clients.  Every address is in one /24 of 10.213.0.0/16 that
no interface of the machine uses; every interface is the tool's own and is
removed at the end, so no traffic leaves the namespaces the tool made.

Faults are routes: a blackhole route to member j inside member i's
namespace cuts the link i->j (both directions are cut together), a
blackhole to the tool's address cuts a member off from its clients.
Needs root and iproute2 (``ip netns``); :class:`NetworkUnavailable` says
why otherwise.
"""
from __future__ import annotations

import ipaddress
import itertools
import os
import shutil
import subprocess


class NetworkUnavailable(Exception):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise NetworkUnavailable(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _ip("-4", "-o", "addr", "show", check=False).stdout
    nets = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return nets


class Network:
    """``n`` member namespaces on one bridge; member i has address
    ``member_ip(i)``, the tool ``client_ip``."""

    def __init__(self, n: int):
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise NetworkUnavailable("partitions need root and iproute2 (network namespaces)")
        self.tag = f"{os.getpid() % 100000:05d}"
        self.subnet = self._free_subnet()
        self.hub = f"jl{self.tag}hub"
        self.ns = [f"jl{self.tag}m{i}" for i in range(n)]
        self.root_if = f"jl{self.tag}r"
        self.cuts: set[frozenset] = set()
        self.client_cuts: set[int] = set()
        self._made: list[str] = []
        try:
            self._build()
        except NetworkUnavailable:
            self.close()
            raise

    def _free_subnet(self) -> ipaddress.IPv4Network:
        used = _used_networks()
        base = int(self.tag) % 250
        for k in itertools.chain(range(base, 256), range(0, base)):
            net = ipaddress.ip_network(f"10.213.{k}.0/24")
            if not any(net.overlaps(u) for u in used):
                return net
        raise NetworkUnavailable("no free /24 in 10.213.0.0/16")

    @property
    def client_ip(self) -> str:
        return str(self.subnet.network_address + 1)

    def member_ip(self, i: int) -> str:
        return str(self.subnet.network_address + 10 + i)

    def _netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _build(self) -> None:
        self._netns(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        _ip("link", "add", self.root_if, "type", "veth", "peer", "name", "uplink", "netns", self.hub)
        _ip("addr", "add", f"{self.client_ip}/24", "dev", self.root_if)
        _ip("link", "set", self.root_if, "up")
        _ip("-n", self.hub, "link", "set", "uplink", "master", "br0", "up")
        for i, ns in enumerate(self.ns):
            self._netns(ns)
            _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"port{i}",
                "netns", self.hub)
            _ip("-n", ns, "addr", "add", f"{self.member_ip(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", self.hub, "link", "set", f"port{i}", "master", "br0", "up")

    # ---- faults ------------------------------------------------------------------------
    def _blackhole(self, i: int, ip: str, on: bool) -> None:
        _ip("-n", self.ns[i], "route", "add" if on else "del", "blackhole", f"{ip}/32",
            check=on)

    def cut(self, i: int, j: int) -> None:
        pair = frozenset((i, j))
        if i == j or pair in self.cuts:
            return
        self.cuts.add(pair)
        self._blackhole(i, self.member_ip(j), True)
        self._blackhole(j, self.member_ip(i), True)

    def partition(self, groups: list[list[int]]) -> None:
        """Cut every link between members of different groups."""
        where = {m: g for g, ms in enumerate(groups) for m in ms}
        for i, j in itertools.combinations(sorted(where), 2):
            if where[i] != where[j]:
                self.cut(i, j)

    def cut_clients(self, i: int) -> None:
        if i not in self.client_cuts:
            self.client_cuts.add(i)
            self._blackhole(i, self.client_ip, True)

    def heal(self) -> None:
        for pair in list(self.cuts):
            i, j = sorted(pair)
            self._blackhole(i, self.member_ip(j), False)
            self._blackhole(j, self.member_ip(i), False)
        self.cuts.clear()
        for i in list(self.client_cuts):
            self._blackhole(i, self.client_ip, False)
        self.client_cuts.clear()

    def close(self) -> None:
        _ip("link", "del", self.root_if, check=False)
        for ns in reversed(self._made):
            _ip("netns", "del", ns, check=False)
        self._made.clear()
