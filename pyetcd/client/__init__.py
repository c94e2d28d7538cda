"""pyetcd.client: a small gRPC client of the etcd v3 API (sync), used by
pyetcdctl, bench/, jepsen-lite/ and the tests.  May import only pyetcd.pb,
pyetcd.errors, pyetcd.util and pyetcd.version."""
from pyetcd.util.tlsfiles import channel_credentials

from .client import Client, ClientError, parse_endpoint

__all__ = ["Client", "ClientError", "channel_credentials", "parse_endpoint"]
