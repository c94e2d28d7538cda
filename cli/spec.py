"""pyetcdctl's command table: each command module lists its commands as
:class:`Command` rows (path, handler, arguments, help); :func:`build_parser`
turns the rows into one argparse parser.  etcdctl's global flags are rows
too, so they can be given anywhere on the line (cobra's persistent flags)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Arg:
    flags: tuple[str, ...]
    kw: dict

    @property
    def takes_value(self) -> bool:
        return self.kw.get("action") not in ("store_true", "store_false")


def arg(*flags: str, **kw) -> Arg:
    return Arg(flags, kw)


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]            # ("member", "add")
    run: Callable                    # run(ctl) -> exit status
    args: tuple[Arg, ...] = ()
    help: str = ""
    needs_ctl: bool = field(default=True)   # False: run(args) without a connection context


def build_parser(prog: str, description: str, global_args, commands) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    for a in global_args:
        p.add_argument(*a.flags, **a.kw)
    top = p.add_subparsers(dest="cmd", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for c in commands:
        if len(c.path) == 1:
            cp = top.add_parser(c.path[0], help=c.help)
        else:
            group = groups.get(c.path[0])
            if group is None:
                group = groups[c.path[0]] = top.add_parser(c.path[0]).add_subparsers(
                    dest="sub", required=True)
            cp = group.add_parser(c.path[1], help=c.help)
        for a in c.args:
            cp.add_argument(*a.flags, **a.kw)
        cp.set_defaults(command=c)
    return p


def hoist_globals(argv: list[str], global_args) -> list[str]:
    """Move global flags given after the command in front of it (argparse
    wants them before the subcommand; cobra takes them anywhere)."""
    valued = {f for a in global_args if a.takes_value for f in a.flags}
    plain = {f for a in global_args if not a.takes_value for f in a.flags}
    front, rest = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if name in valued:
            if "=" in a:
                front.append(a)
            else:
                front.extend(argv[i:i + 2])
                i += 1
        elif name in plain:
            front.append(a)
        else:
            rest.append(a)
        i += 1
    return front + rest
