"""Certificates for the tests, made with cryptography: a private CA, a server certificate it issues, and the
wrong kinds (a leaf, an expired CA) the CA field of an LDAP provider must refuse."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _build(
    subject: str, *, issuer: Issued | None, ca: bool, days: int = 1, started_days_ago: int = 0
) -> tuple[x509.CertificateBuilder, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    start = _now() - datetime.timedelta(days=started_days_ago, minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder, key


def make_ca(subject: str = "Acme Internal CA", *, days: int = 1, started_days_ago: int = 0) -> Issued:
    builder, key = _build(subject, issuer=None, ca=True, days=days, started_days_ago=started_days_ago)
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    return Issued(builder.add_extension(usage, critical=True).sign(key, hashes.SHA256()), key)


def issue_server(ca: Issued, host: str = "127.0.0.1") -> Issued:
    """A server certificate for 127.0.0.1 and localhost, issued by `ca`."""
    builder, key = _build(host, issuer=ca, ca=False)
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def self_signed_leaf(subject: str = "ldap.acme.test") -> Issued:
    """A certificate that is no CA (basicConstraints CA:FALSE)."""
    builder, key = _build(subject, issuer=None, ca=False)
    return Issued(builder.sign(key, hashes.SHA256()), key)
