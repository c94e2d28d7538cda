"""Certificates for a cluster: a CA plus server, peer and client certificates
(the seed's openssl recipe, which OpenSSL 3 rejects, done right with
``cryptography``).  Used by ``pyetcdctl certs create``, ``pyetcd-cluster --tls``
and the server's ``--auto-tls``/``--peer-auto-tls`` (:func:`self_signed`).

    pyetcdctl certs create --dir ./pki --ip 10.4.7.200 --ip 10.4.7.201 \\
        --ip 10.4.7.202 --dns etcd-1.k8s.com

writes ca.crt/ca.key, server.crt/.key (serverAuth, SANs), peer.crt/.key
(serverAuth + clientAuth: members dial each other), client.crt/.key
(clientAuth; CN = --client-cn, the user name when auth is enabled) and prints
the pyetcd/etcd and etcdctl flags that use them.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_pair(key_path: Path, key, cert_path: Path, cert) -> None:
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write(path: Path, key, cert) -> None:
    _write_pair(path.with_suffix(".key"), key, path.with_suffix(".crt"), cert)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sans(hosts) -> list:
    """IP addresses and DNS names as subject alternative names."""
    out = []
    for h in hosts:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            out.append(x509.DNSName(h))
    return out


def self_signed(dirpath: str, hosts: list[str], days: int = 365) -> tuple[str, str]:
    """etcd's auto TLS: a self-signed certificate (O=etcd, the hosts as
    SANs) kept as ``cert.pem``/``key.pem`` in ``dirpath`` and reused from
    there; returns (cert path, key path)."""
    cert_path, key_path = os.path.join(dirpath, "cert.pem"), os.path.join(dirpath, "key.pem")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    os.makedirs(dirpath, mode=0o700, exist_ok=True)
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(_sans(hosts) or [x509.DNSName("localhost")]),
                           False)
            .sign(key, hashes.SHA256()))
    _write_pair(Path(key_path), key, Path(cert_path), cert)
    return cert_path, key_path


def make_ca(cn: str = "etcd-ca", days: int = 3650, not_before=None):
    key = _key()
    now = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_cert(ca_key, ca_cert, cn: str, ips=(), dns=(), server=True, client=True,
              days: int = 3650, not_before=None, not_after=None):
    key = _key()
    now = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    eku = []
    if server:
        eku.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        eku.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now)
         .not_valid_after(not_after or now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                      content_commitment=False, data_encipherment=False,
                                      key_agreement=False, key_cert_sign=False, crl_sign=False,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.ExtendedKeyUsage(eku), critical=False))
    sans = _sans(ips) + [x509.DNSName(d) for d in dns]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def create(out: str, ips=("127.0.0.1",), dns=("localhost",), client_cn: str = "root",
           days: int = 3650) -> dict[str, str]:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca = make_ca(days=days)
    _write(d / "ca", ca_key, ca)
    k, c = make_cert(ca_key, ca, "etcd-server", ips, dns, server=True, client=True, days=days)
    _write(d / "server", k, c)
    k, c = make_cert(ca_key, ca, "etcd-peer", ips, dns, server=True, client=True, days=days)
    _write(d / "peer", k, c)
    k, c = make_cert(ca_key, ca, client_cn, (), (), server=False, client=True, days=days)
    _write(d / "client", k, c)
    return {n: str(d / n) for n in ("ca", "server", "peer", "client")}
