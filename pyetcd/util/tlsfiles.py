"""Reading certificate files and building gRPC client credentials from them
(etcdctl's ``--cacert/--cert/--key``; the server's leader forwarding uses
the same with its client certificate flags)."""
from __future__ import annotations

import grpc


class TLSFileError(OSError):
    """A certificate, key or CA file could not be read."""


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TLSFileError(f"cannot read {what} {path!r}: {exc.strerror}") from None


def channel_credentials(cacert: str | None, cert: str | None,
                        key: str | None) -> grpc.ChannelCredentials:
    """gRPC TLS credentials: the CA to verify the server with (None: the
    system's roots), and an optional client certificate and key."""
    return grpc.ssl_channel_credentials(
        root_certificates=read_file(cacert, "trusted CA file") if cacert else None,
        private_key=read_file(key, "key file") if key else None,
        certificate_chain=read_file(cert, "certificate file") if cert else None)
