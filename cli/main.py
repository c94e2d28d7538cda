"""pyetcdctl: etcdctl's global flags, commands and output formats.

Every command is a row of a command table (see :mod:`.spec`) kept beside
its handler: kv.py (put, get, del, compaction), members.py, leases.py,
watch.py, endpoint.py (endpoint, defrag, alarm), snapshot.py, check.py
(check perf), checkdisk.py (check disk) and certs.py (pyetcdctl's own ``certs create``).
"""
from __future__ import annotations

import sys

from pyetcd.client import ClientError

from . import certs, check, checkdisk, endpoint, kv, leases, members, snapshot, watch
from .ctl import EXIT_BAD_ARGS, EXIT_ERROR, BadArgs, Ctl
from .spec import arg, build_parser, hoist_globals

GLOBAL_ARGS = (
    arg("--endpoints", default="127.0.0.1:2379"),
    arg("--dial-timeout", default="2s"),
    arg("--command-timeout", default="5s"),
    arg("--cacert"),
    arg("--cert"),
    arg("--key", dest="tls_key"),
    arg("--insecure-transport", default="true"),
    arg("--insecure-skip-tls-verify", action="store_true"),
    arg("--user"),
    arg("--password"),
    arg("-w", "--write-out", default="simple",
        choices=["simple", "json", "table", "fields", "protobuf"]),
    arg("--hex", action="store_true"),
    arg("--debug", action="store_true"),
)

COMMANDS = (certs.COMMANDS + snapshot.COMMANDS + kv.COMMANDS + endpoint.COMMANDS
            + members.COMMANDS + leases.COMMANDS + watch.COMMANDS + check.COMMANDS
            + checkdisk.COMMANDS)


def build() -> "argparse.ArgumentParser":  # noqa: F821 - annotation only
    return build_parser("pyetcdctl", "A simple command line client for pyetcd (etcdctl's "
                        "commands).", GLOBAL_ARGS, COMMANDS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build().parse_args(hoist_globals(argv, GLOBAL_ARGS))
    command = args.command
    try:
        if not command.needs_ctl:
            return command.run(args)
        return command.run(Ctl(args))
    except BadArgs as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except ClientError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
