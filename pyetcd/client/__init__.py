"""pyetcd.client: a small gRPC client of the etcd v3 API (sync), used by
pyetcdctl, bench/ and the tests.  May import only pyetcd.pb, pyetcd.errors
and pyetcd.version."""
from .client import Client, ClientError

__all__ = ["Client", "ClientError"]
