"""gRPC servicers (the IO edge): validate requests exactly as etcd's v3rpc
does, call the server, map errors to etcd's codes and texts.  May import
pyetcd.server, pyetcd.pb and pyetcd.errors; nothing below imports this."""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2

# what the gRPC transport accepts; the exact limit (etcd's max-request-bytes
# + 512 KiB) is enforced by api.common.register with grpc-go's message
TRANSPORT_RECV_LIMIT = 64 * 1024 * 1024


def services():
    """The descriptors of every service the client port serves."""
    from pyetcd.pb.v3electionpb import v3election_pb2
    from pyetcd.pb.v3lockpb import v3lock_pb2
    by_name = rpc_pb2.DESCRIPTOR.services_by_name
    return [by_name["KV"], by_name["Maintenance"], by_name["Cluster"], by_name["Lease"],
            by_name["Watch"], by_name["Auth"], v3lock_pb2.DESCRIPTOR.services_by_name["Lock"],
            v3election_pb2.DESCRIPTOR.services_by_name["Election"]]


def service_handlers(server, max_recv: int) -> list[tuple[object, dict]]:
    """[(service descriptor, {method name: grpc handler})] of every service."""
    from .auth import AuthServicer
    from .cluster import ClusterServicer
    from .common import method_handlers
    from .election import ElectionServicer
    from .kv import KVServicer
    from .lease import LeaseServicer
    from .lock import LockServicer
    from .maintenance import MaintenanceServicer
    from .watch import WatchServicer
    servicers = {"KV": KVServicer, "Maintenance": MaintenanceServicer, "Cluster": ClusterServicer,
                 "Lease": LeaseServicer, "Watch": WatchServicer, "Auth": AuthServicer,
                 "Lock": LockServicer, "Election": ElectionServicer}
    return [(d, method_handlers(d, servicers[d.name](server), max_recv)) for d in services()]


def register_services(grpc_server, server, max_recv: int) -> list[tuple[object, dict]]:
    """Every service on ``grpc_server``; returns service_handlers' table."""
    from .common import register
    table = service_handlers(server, max_recv)
    for desc, handlers in table:
        register(grpc_server, desc, handlers)
    return table
