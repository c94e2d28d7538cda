"""gRPC servicers (the IO edge): validate requests exactly as etcd's v3rpc
does, call the server, map errors to etcd's codes and texts.  May import
pyetcd.server, pyetcd.pb and pyetcd.errors; nothing below imports this."""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as pbg


def register_services(grpc_server, server) -> None:
    from .cluster import ClusterServicer
    from .kv import KVServicer
    from .lease import LeaseServicer
    from .maintenance import MaintenanceServicer

    pbg.add_KVServicer_to_server(KVServicer(server), grpc_server)
    pbg.add_MaintenanceServicer_to_server(MaintenanceServicer(server), grpc_server)
    pbg.add_ClusterServicer_to_server(ClusterServicer(server), grpc_server)
    pbg.add_LeaseServicer_to_server(LeaseServicer(server), grpc_server)
