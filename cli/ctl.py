"""What every pyetcdctl command works with: the parsed flags, a client
built from etcdctl's global flags, the endpoints (``--cluster`` asks the
member list), output helpers and etcdctl's exit codes."""
from __future__ import annotations

import json
import sys

from pyetcd.client import Client, ClientError
from pyetcd.util.duration import parse_go_duration

# etcdctl's exit codes (ctlv3/command/error.go)
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_INTERRUPTED = 5
EXIT_BAD_ARGS = 128


class BadArgs(Exception):
    """etcdctl's ExitBadArgs (exit code 128)."""


def goq(s: str) -> str:
    """Go's %q for printable text."""
    return json.dumps(s, ensure_ascii=False)


def bad_connection(exc: ClientError) -> int:
    """etcdctl's ExitBadConnection (exit code 2)."""
    print(f"Error: {exc.message}", file=sys.stderr)
    return EXIT_BAD_CONNECTION


def _duration(flag: str, text: str) -> float:
    try:
        return parse_go_duration(text)
    except ValueError as exc:
        raise BadArgs(f'invalid argument {goq(text)} for "{flag}" flag: {exc}') from None


class Ctl:
    quote = staticmethod(goq)

    def __init__(self, args):
        self.args = args
        self.out = sys.stdout
        self.dial = _duration("--dial-timeout", args.dial_timeout)
        self.timeout = _duration("--command-timeout", args.command_timeout)

    def client(self, endpoint: str | None = None) -> Client:
        a = self.args
        return Client(endpoint or a.endpoints, dial_timeout=self.dial, timeout=self.timeout,
                      cacert=a.cacert, cert=a.cert, key=a.tls_key,
                      insecure_transport=a.insecure_transport.lower() not in ("false", "0"),
                      user=a.user, password=a.password)

    def endpoint_list(self) -> list[str]:
        return [e for e in self.args.endpoints.split(",") if e]

    def endpoints(self, cluster: bool) -> list[str]:
        """The --endpoints, or with --cluster every member's client URLs."""
        if not cluster:
            return self.endpoint_list()
        with self.client() as c:
            return [u for m in c.member_list().members for u in m.clientURLs]

    @staticmethod
    def header_json(h) -> dict:
        return {"cluster_id": h.cluster_id, "member_id": h.member_id, "revision": h.revision,
                "raft_term": h.raft_term}

    def p(self, text: str = "") -> None:
        self.out.write(text + "\n")
