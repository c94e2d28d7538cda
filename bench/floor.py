"""The floor: a grpc.aio server on uvloop that answers etcd's KV RPCs with
fixed, pre-encoded responses and does nothing else (no parsing, no state).

What any grpcio server pays per request on this machine; pyetcd's own work is
what it costs above this.  The same gRPC options as pyetcd's client port
(the limits and keepalive policy of ``pyetcd.api.serving``).  It answers
``KV.{Range,Put,DeleteRange,Txn,Compact}`` (the load rows it can stand in for:
put, range, txn-put, txn-mixed), ``Maintenance.Status`` (a leader, so
harnesses see a ready member) and ``Cluster.MemberList``; anything else is
UNIMPLEMENTED.

    python -m bench.floor --listen 127.0.0.1:23790 [--member-id N]
"""
from __future__ import annotations

import argparse
import asyncio
import signal

import grpc

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

CLUSTER_ID = 0xF100F100F100F100


def responses(member_id: int, url: str) -> dict[str, bytes]:
    h = pb.ResponseHeader(cluster_id=CLUSTER_ID, member_id=member_id, revision=1, raft_term=1)
    return {
        "/etcdserverpb.KV/Range": pb.RangeResponse(header=h).SerializeToString(),
        "/etcdserverpb.KV/Put": pb.PutResponse(header=h).SerializeToString(),
        "/etcdserverpb.KV/DeleteRange": pb.DeleteRangeResponse(header=h).SerializeToString(),
        "/etcdserverpb.KV/Txn": pb.TxnResponse(header=h, succeeded=True).SerializeToString(),
        "/etcdserverpb.KV/Compact": pb.CompactionResponse(header=h).SerializeToString(),
        "/etcdserverpb.Maintenance/Status": pb.StatusResponse(
            header=h, version="3.5.1", leader=member_id, raftIndex=1, raftTerm=1,
            raftAppliedIndex=1).SerializeToString(),
        "/etcdserverpb.Cluster/MemberList": pb.MemberListResponse(
            header=h, members=[pb.Member(ID=member_id, name="floor", clientURLs=[url])]
        ).SerializeToString(),
    }


class Handlers(grpc.GenericRpcHandler):
    """One prebuilt method handler per RPC, bytes in and out (no serializers)."""

    def __init__(self, table: dict[str, bytes]):
        self.handlers = {}
        for method, body in table.items():
            async def answer(request, context, body=body):
                return body
            self.handlers[method] = grpc.unary_unary_rpc_method_handler(answer)

    def service(self, details):
        return self.handlers.get(details.method)


def grpc_options() -> list[tuple[str, int]]:
    """pyetcd's client-port options with default flags (the one place bench/
    imports the server's layers: the floor must pay exactly what pyetcd's
    gRPC server pays, tests/test_layers.py lists the exception)."""
    from pyetcd.api.serving import grpc_options as pyetcd_options   # noqa: PLC0415
    from pyetcd.server.config import parse_args   # noqa: PLC0415
    return pyetcd_options(parse_args([]))


async def serve(listen: str, member_id: int) -> None:
    server = grpc.aio.server(options=grpc_options())
    server.add_generic_rpc_handlers([Handlers(responses(member_id, f"http://{listen}"))])
    if server.add_insecure_port(listen) == 0:
        raise SystemExit(f"bench.floor: cannot listen on {listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n")[0])
    p.add_argument("--listen", required=True, help="host:port")
    p.add_argument("--member-id", type=int, default=1)
    a = p.parse_args(argv)
    try:
        import uvloop   # noqa: PLC0415 - the loop pyetcd runs on
        uvloop.run(serve(a.listen, a.member_id))
    except ImportError:
        asyncio.run(serve(a.listen, a.member_id))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
