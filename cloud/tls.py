"""TLS for the cloud: a private CA and a loopback server certificate, pins, and the server context.

``endpoint-cloud init-tls DIR`` writes ``ca.pem`` (the CA certificate an agent trusts with
``ca_file``), ``server.pem`` (the server certificate followed by the CA) and ``server.key`` (0600,
PKCS#8). The CA's private key is never written: to reissue, run ``init-tls`` on a new directory.
The server certificate names 127.0.0.1, ::1 and localhost. The SPKI pin is the base64 SHA-256 of
the server certificate's DER SubjectPublicKeyInfo (the form of HPKP ``pin-sha256``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud.errors import SetupError

__all__ = ["init_tls", "server_context", "spki_pin"]

_VALIDITY = dt.timedelta(days=825)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "endpoint-cloud"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _ca(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name("endpoint-cloud private CA"))
        .issuer_name(_name("endpoint-cloud private CA"))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server(
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
) -> x509.Certificate:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    return (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def init_tls(directory: Path) -> str:
    """Write ca.pem, server.pem and server.key into ``directory`` (refusing to overwrite); returns the pin."""
    paths = [directory / name for name in ("ca.pem", "server.pem", "server.key")]
    if existing := [p.name for p in paths if p.exists()]:
        raise SetupError(f"refusing to overwrite {', '.join(existing)} in {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _ca(ca_key, now)
    server = _server(server_key, ca, ca_key, now)
    pem = serialization.Encoding.PEM
    key_pem = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(paths[2], key_pem, 0o600)
    _write(paths[0], ca.public_bytes(pem), 0o644)
    _write(paths[1], server.public_bytes(pem) + ca.public_bytes(pem), 0o644)
    return spki_pin(server.public_bytes(pem))


def spki_pin(cert_pem: bytes) -> str:
    """Base64 SHA-256 of the first certificate's DER SubjectPublicKeyInfo in ``cert_pem``."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context: TLS 1.2 or newer, the stdlib's secure defaults, no client certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SetupError(f"cannot load the TLS certificate or key: {exc.__class__.__name__}: {exc}") from exc
    context.set_alpn_protocols(["http/1.1"])
    return context
