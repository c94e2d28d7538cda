"""member list|add|remove|update|promote (etcdctl's member_command.go and
printer_simple.go)."""
from __future__ import annotations

import json

from .ctl import BadArgs, goq
from .output import table
from .spec import Command, arg


def member_list(ctl) -> int:
    with ctl.client() as c:
        resp = c.member_list()
    rows = [[f"{m.ID:x}", "started" if m.name else "unstarted", m.name, ",".join(m.peerURLs),
             ",".join(m.clientURLs), str(m.isLearner).lower()] for m in resp.members]
    if ctl.args.write_out == "table":
        ctl.out.write(table(["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"],
                            rows))
    else:
        for r in rows:
            ctl.p(", ".join(r))
    return 0


def _member_id(args: list[str]) -> int:
    if len(args) != 1:
        raise BadArgs("member ID is not provided")
    try:
        return int(args[0], 16)
    except ValueError:
        raise BadArgs(f"bad member ID arg (strconv.ParseUint: parsing {goq(args[0])}: "
                      "invalid syntax), expecting ID in Hex") from None


def _peer_urls(text: str) -> list[str]:
    urls = [u for u in text.split(",") if u]
    if not urls:
        raise BadArgs("member peer urls not provided")
    return urls


def member_add(ctl) -> int:
    a = ctl.args
    if len(a.name) < 1:
        raise BadArgs("member name not provided")
    if len(a.name) > 1:
        raise BadArgs("too many arguments" + "".join(
            f", did you mean --peer-urls={s}" for s in a.name if s.lower().startswith("http")))
    name = a.name[0]
    urls = _peer_urls(a.peer_urls)
    with ctl.client() as c:
        resp = c.member_add(urls, a.learner)
    if a.write_out == "json":
        ctl.p(json.dumps(_members_json(ctl, resp, member=resp.member)))
        return 0
    learner = " as learner " if resp.member.isLearner else " "
    ctl.p(f"Member {resp.member.ID:16x} added{learner}to cluster {resp.header.cluster_id:16x}")
    conf = [f"{name if m.ID == resp.member.ID else m.name}={u}"
            for m in resp.members for u in m.peerURLs]
    ctl.p()
    ctl.p(f"ETCD_NAME={goq(name)}")
    ctl.p(f"ETCD_INITIAL_CLUSTER={goq(','.join(conf))}")
    ctl.p(f"ETCD_INITIAL_ADVERTISE_PEER_URLS={goq(a.peer_urls)}")
    ctl.p('ETCD_INITIAL_CLUSTER_STATE="existing"')
    return 0


def _by_id(call: str, done: str, needs_urls: bool = False):
    """member remove|update|promote: one member id (hex), maybe peer URLs,
    and etcdctl's one-line answer (``Member <id> <done> cluster <id>``)."""
    def run(ctl) -> int:
        mid = _member_id(ctl.args.id)
        args = (mid, _peer_urls(ctl.args.peer_urls)) if needs_urls else (mid,)
        with ctl.client() as c:
            resp = getattr(c, call)(*args)
        ctl.p(f"Member {mid:16x} {done} cluster {resp.header.cluster_id:16x}")
        return 0
    return run


member_remove = _by_id("member_remove", "removed from")
member_update = _by_id("member_update", "updated in", needs_urls=True)
member_promote = _by_id("member_promote", "promoted in")


def _members_json(ctl, resp, member=None) -> dict:
    def m(x):
        d = {"ID": x.ID, "name": x.name, "peerURLs": list(x.peerURLs)}
        if x.clientURLs:
            d["clientURLs"] = list(x.clientURLs)
        if x.isLearner:
            d["isLearner"] = True
        return d
    out = {"header": ctl.header_json(resp.header)}
    if member is not None:
        out["member"] = m(member)
    out["members"] = [m(x) for x in resp.members]
    return out


COMMANDS = [
    Command(("member", "list"), member_list, (), "Lists all members in the cluster"),
    Command(("member", "add"), member_add, (arg("name", nargs="*"), arg("--peer-urls", default=""),
                                            arg("--learner", action="store_true")),
            "Adds a member into the cluster"),
    Command(("member", "remove"), member_remove, (arg("id", nargs="*"),),
            "Removes a member from the cluster"),
    Command(("member", "update"), member_update, (arg("id", nargs="*"),
                                                  arg("--peer-urls", default="")),
            "Updates a member in the cluster"),
    Command(("member", "promote"), member_promote, (arg("id", nargs="*"),),
            "Promotes a non-voting member in the cluster"),
]
