"""gRPC servicers (the IO edge): validate requests exactly as etcd's v3rpc
does, call the server, map errors to etcd's codes and texts.  May import
pyetcd.server, pyetcd.pb and pyetcd.errors; nothing below imports this."""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2

# what the gRPC transport accepts; the exact limit (etcd's max-request-bytes
# + 512 KiB) is enforced by api.common.register with grpc-go's message
TRANSPORT_RECV_LIMIT = 64 * 1024 * 1024


def register_services(grpc_server, server, max_recv: int) -> None:
    from .auth import AuthServicer
    from .cluster import ClusterServicer
    from .common import register
    from .kv import KVServicer
    from .lease import LeaseServicer
    from .maintenance import MaintenanceServicer
    from .watch import WatchServicer
    from .lock import LockServicer
    from .election import ElectionServicer
    from pyetcd.pb.v3lockpb import v3lock_pb2
    from pyetcd.pb.v3electionpb import v3election_pb2

    services = rpc_pb2.DESCRIPTOR.services_by_name
    register(grpc_server, services["KV"], KVServicer(server), max_recv)
    register(grpc_server, services["Maintenance"], MaintenanceServicer(server), max_recv)
    register(grpc_server, services["Cluster"], ClusterServicer(server), max_recv)
    register(grpc_server, services["Lease"], LeaseServicer(server), max_recv)
    register(grpc_server, services["Watch"], WatchServicer(server), max_recv)
    register(grpc_server, services["Auth"], AuthServicer(server), max_recv)
    register(grpc_server, v3lock_pb2.DESCRIPTOR.services_by_name["Lock"], LockServicer(server),
             max_recv)
    register(grpc_server, v3election_pb2.DESCRIPTOR.services_by_name["Election"],
             ElectionServicer(server), max_recv)
