"""``pyetcdctl certs create``: see :mod:`pyetcd.certs`."""
from __future__ import annotations

from pathlib import Path

from pyetcd.certs import create

from .spec import Command, arg


def run(args) -> int:
    ips = args.ip or ["127.0.0.1"]
    dns = args.dns or ["localhost"]
    paths = create(args.dir, ips, dns, args.client_cn, args.days)
    d = Path(args.dir)
    print(f"wrote {d}/ca.crt, server.crt/key, peer.crt/key, client.crt/key "
          f"(SANs: {', '.join(ips + dns)})")
    print("\nserver flags (pyetcd or etcd):")
    print(f"  --client-cert-auth --trusted-ca-file={paths['ca']}.crt "
          f"--cert-file={paths['server']}.crt --key-file={paths['server']}.key \\")
    print(f"  --peer-client-cert-auth --peer-trusted-ca-file={paths['ca']}.crt "
          f"--peer-cert-file={paths['peer']}.crt --peer-key-file={paths['peer']}.key")
    print("\netcdctl flags:")
    print(f"  --cacert={paths['ca']}.crt --cert={paths['client']}.crt --key={paths['client']}.key")
    return 0


COMMANDS = [
    Command(("certs", "create"), run, (
        arg("--dir", default="pki", help="where to write the files (default ./pki)"),
        arg("--ip", action="append", default=None,
            help="an IP address SAN (repeatable; default 127.0.0.1)"),
        arg("--dns", action="append", default=None,
            help="a DNS name SAN (repeatable; default localhost)"),
        arg("--client-cn", default="root", help="the client certificate's CN (its user)"),
        arg("--days", type=int, default=3650)),
        "create TLS certificates for a cluster", needs_ctl=False),
]
