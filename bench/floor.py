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
    """pyetcd's client-port options with default flags (bench/ drives the
    wire only, so they are restated; tests/test_bench.py checks they agree)."""
    return [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_concurrent_streams", 2**31 - 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_time_ms", 2 * 3600 * 1000),
        ("grpc.keepalive_timeout_ms", 20 * 1000),
        ("grpc.so_reuseport", 0),
    ]


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
