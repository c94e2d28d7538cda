"""lease grant|revoke|timetolive|list|keep-alive (etcdctl's lease_command.go)."""
from __future__ import annotations

from pyetcd.client import ClientError

from .ctl import BadArgs, bad_connection, goq
from .spec import Command, arg

_NEEDS_ID = {"revoke": "lease revoke command needs 1 argument",
             "timetolive": "lease timetolive command needs lease ID as argument",
             "keep-alive": "lease keep-alive command needs lease ID as argument"}


def lease_id(text: str) -> int:
    try:
        v = int(text, 16)
        if not -(1 << 63) <= v < (1 << 63) or text.lower().startswith(("0x", "+")) or "_" in text:
            raise ValueError
        return v
    except ValueError:
        raise BadArgs(f"bad lease ID arg (strconv.ParseInt: parsing {goq(text)}: invalid syntax), "
                      "expecting ID in Hex") from None


def _one_id(ctl) -> int:
    if len(ctl.args.arg) != 1:
        raise BadArgs(_NEEDS_ID[ctl.args.sub])
    return lease_id(ctl.args.arg[0])


def grant(ctl) -> int:
    a = ctl.args
    if len(a.arg) != 1:
        raise BadArgs("lease grant command needs TTL argument")
    try:
        ttl = int(a.arg[0], 10)
    except ValueError:
        raise BadArgs(f"bad TTL (strconv.ParseInt: parsing {goq(a.arg[0])}: invalid syntax)") from None
    with ctl.client() as c:
        try:
            resp = c.lease_grant(ttl)
        except ClientError as exc:
            raise ClientError(exc.code, f"failed to grant lease ({exc.message})") from None
    ctl.p(f"lease {resp.ID:016x} granted with TTL({resp.TTL}s)")
    return 0


def lease_list(ctl) -> int:
    with ctl.client() as c:
        try:
            resp = c.leases()
        except ClientError as exc:
            return bad_connection(exc)
    ctl.p(f"found {len(resp.leases)} leases")
    for item in resp.leases:
        ctl.p(f"{item.ID:016x}")
    return 0


def revoke(ctl) -> int:
    lid = _one_id(ctl)
    with ctl.client() as c:
        try:
            c.lease_revoke(lid)
        except ClientError as exc:
            raise ClientError(exc.code, f"failed to revoke lease ({exc.message})") from None
    ctl.p(f"lease {lid:016x} revoked")
    return 0


def time_to_live(ctl) -> int:
    lid = _one_id(ctl)
    with ctl.client() as c:
        try:
            resp = c.lease_time_to_live(lid, ctl.args.keys)
        except ClientError as exc:
            return bad_connection(exc)
    if resp.grantedTTL == 0 and resp.TTL == -1:
        ctl.p(f"lease {resp.ID:016x} already expired")
        return 0
    txt = f"lease {resp.ID:016x} granted with TTL({resp.grantedTTL}s), remaining({resp.TTL}s)"
    if ctl.args.keys:
        txt += f", attached keys([{' '.join(k.decode(errors='replace') for k in resp.keys)}])"
    ctl.p(txt)
    return 0


def keep_alive(ctl) -> int:
    """The Go client renews every TTL/3 and stops when the lease is gone."""
    lid = _one_id(ctl)
    once = ctl.args.once
    with ctl.client() as c:
        try:
            for resp in c.keep_alive(lid, None if once else (lambda ttl: max(ttl / 3.0, 0.5))):
                if resp.TTL <= 0:
                    if once:
                        return bad_connection(ClientError(
                            "NotFound", "etcdserver: requested lease not found"))
                    break
                ctl.p(f"lease {resp.ID:016x} keepalived with TTL({resp.TTL})")
                ctl.out.flush()
        except ClientError as exc:
            return bad_connection(exc)
        except KeyboardInterrupt:
            return 130
    if not once:
        ctl.p(f"lease {lid:016x} expired or revoked.")
    return 0


_IDS = (arg("arg", nargs="*"),)
COMMANDS = [
    Command(("lease", "grant"), grant, _IDS, "Creates leases"),
    Command(("lease", "revoke"), revoke, _IDS, "Revokes leases"),
    Command(("lease", "timetolive"), time_to_live, _IDS + (arg("--keys", action="store_true"),),
            "Get lease information"),
    Command(("lease", "list"), lease_list, (), "List all active leases"),
    Command(("lease", "keep-alive"), keep_alive, _IDS + (arg("--once", action="store_true"),),
            "Keeps leases alive (renew)"),
]
