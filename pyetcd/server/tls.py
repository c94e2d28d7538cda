"""TLS for clients (gRPC) and peers (the Raft transport), from etcd's flags.

Client side (``https://`` in --listen-client-urls): --cert-file, --key-file,
--client-cert-auth with --trusted-ca-file (a client without a certificate,
with one from another CA or an expired one fails the handshake),
--auto-tls (a self-signed certificate in <data-dir>/fixtures/client).
Peer side (``https://`` peer URLs): --peer-cert-file, --peer-key-file,
--peer-client-cert-auth with --peer-trusted-ca-file (members verify each
other both ways), --peer-auto-tls, --peer-cert-allowed-cn,
--peer-cert-allowed-hostname.  --cipher-suites and --tls-min-version apply
to both.
"""
from __future__ import annotations

import logging
import os
import ssl

import grpc

from pyetcd.certs import self_signed
from pyetcd.util.tlsfiles import TLSFileError, read_file

from .config import Config, ConfigError

log = logging.getLogger("pyetcd.tls")

_TLS_VERSIONS = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3,
                 "": ssl.TLSVersion.TLSv1_2}


def _read(path: str, what: str) -> bytes:
    try:
        return read_file(path, what)
    except TLSFileError as exc:
        raise ConfigError(str(exc)) from None


def _hosts(urls: list[str]) -> list[str]:
    from urllib.parse import urlsplit
    return sorted({urlsplit(u).hostname or "localhost" for u in urls})


def client_files(cfg: Config) -> tuple[str, str, str]:
    cert, key = cfg.cert_file, cfg.key_file
    if not (cert and key):
        if not cfg.auto_tls:
            raise ConfigError("https client URLs need --cert-file and --key-file (or --auto-tls)")
        cert, key = self_signed(os.path.join(cfg.data_dir_path, "fixtures", "client"),
                                _hosts(cfg.listen_client_urls + cfg.advertise_client_urls))
    return cert, key, cfg.trusted_ca_file


def server_credentials(cfg: Config) -> grpc.ServerCredentials:
    cert, key, ca = client_files(cfg)
    if cfg.client_cert_auth and not ca:
        raise ConfigError("--client-cert-auth needs --trusted-ca-file")
    return grpc.ssl_server_credentials(
        [(_read(key, "key file"), _read(cert, "certificate file"))],
        root_certificates=_read(ca, "trusted CA file") if (ca and cfg.client_cert_auth) else None,
        require_client_auth=bool(cfg.client_cert_auth))


def _context(purpose, cert: str, key: str, ca: str, verify: bool, cfg: Config) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose == "server" else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _TLS_VERSIONS.get(cfg.tls_min_version, ssl.TLSVersion.TLSv1_2)
    if cfg.tls_max_version in _TLS_VERSIONS and cfg.tls_max_version:
        ctx.maximum_version = _TLS_VERSIONS[cfg.tls_max_version]
    if cfg.cipher_suites:
        ctx.set_ciphers(cfg.cipher_suites.replace(",", ":"))
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load peer certificate {cert!r} / key {key!r}: {exc}") from None
    if purpose == "client":
        ctx.check_hostname = False  # peers are addressed by the URLs in the member list
        if ca:
            ctx.load_verify_locations(ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.verify_mode = ssl.CERT_NONE  # --peer-auto-tls without a CA, as etcd allows
    elif verify:
        if not ca:
            raise ConfigError("--peer-client-cert-auth needs --peer-trusted-ca-file")
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_contexts(cfg: Config) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """(server context, client context) for the peer transport, or Nones."""
    urls = cfg.listen_peer_urls + cfg.initial_advertise_peer_urls
    if not any(u.startswith("https") for u in urls) and not cfg.peer_cert_file:
        return None, None
    cert, key, ca = cfg.peer_cert_file, cfg.peer_key_file, cfg.peer_trusted_ca_file
    if not (cert and key):
        if not cfg.peer_auto_tls:
            raise ConfigError("https peer URLs need --peer-cert-file and --peer-key-file "
                              "(or --peer-auto-tls)")
        cert, key = self_signed(os.path.join(cfg.data_dir_path, "fixtures", "peer"), _hosts(urls))
    server = _context("server", cert, key, ca, bool(cfg.peer_client_cert_auth), cfg)
    client = _context("client", cert, key, ca, True, cfg)
    return server, client


def check_peer_cert(cfg: Config, peercert: dict | None) -> str:
    """etcd's --peer-cert-allowed-cn / --peer-cert-allowed-hostname; returns
    why a verified peer certificate is not acceptable ("" when it is)."""
    if not (cfg.peer_cert_allowed_cn or cfg.peer_cert_allowed_hostname):
        return ""
    if not peercert:
        return "the peer presented no certificate"
    cn = next((v for rdn in peercert.get("subject", ()) for k, v in rdn if k == "commonName"), "")
    if cfg.peer_cert_allowed_cn and cn != cfg.peer_cert_allowed_cn:
        return f"peer certificate CN {cn!r} is not the allowed CN {cfg.peer_cert_allowed_cn!r}"
    if cfg.peer_cert_allowed_hostname:
        names = [v for k, v in peercert.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
        if cfg.peer_cert_allowed_hostname not in names:
            return (f"peer certificate names {names} do not include the allowed hostname "
                    f"{cfg.peer_cert_allowed_hostname!r}")
    return ""


def metrics_context(cfg: Config) -> ssl.SSLContext:
    """TLS for ``https://`` --listen-metrics-urls: the client certificate
    flags, as etcd's metrics listener uses them."""
    cert, key, ca = client_files(cfg)
    if cfg.client_cert_auth and not ca:
        raise ConfigError("--client-cert-auth needs --trusted-ca-file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load certificate {cert!r} / key {key!r}: {exc}") from None
    if cfg.client_cert_auth:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
