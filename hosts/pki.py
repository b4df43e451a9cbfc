"""The keys Quetzal reaches hosts with: a CA and certificates for qemu+tls, an SSH key for qemu+ssh.

Files follow libvirt's layout so the URIs can point at them (`?pkipath=` for TLS, `?keyfile=` for
SSH) and the server bundle can be copied to a host's /etc/pki as is.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from quetzal.errors import ServiceError

CERT_DAYS = 3650


class PkiError(ServiceError):
    """A key or certificate could not be made."""

    code = "pki_error"


@dataclass(frozen=True)
class ServerBundle:
    """What a host needs for libvirtd's TLS listener, and where it goes on the host."""

    directory: Path
    cacert: Path
    cert: Path
    key: Path

    def install_lines(self) -> list[str]:
        """Shell lines an operator runs on the host to install the bundle."""
        return [
            f"install -D -m 0644 {self.cacert.name} /etc/pki/CA/cacert.pem",
            f"install -D -m 0644 {self.cert.name} /etc/pki/libvirt/servercert.pem",
            f"install -D -m 0600 {self.key.name} /etc/pki/libvirt/private/serverkey.pem",
            "echo 'listen_tls = 1' >> /etc/libvirt/libvirtd.conf   # then restart libvirtd (--listen)",
        ]


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Quetzal"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def ensure_ca(root: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The deployment's CA, made on first use (root/ca/cacert.pem, root/ca/cakey.pem)."""
    cert_path, key_path = root / "ca" / "cacert.pem", root / "ca" / "cakey.pem"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Quetzal host CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _issue(root: Path, common_name: str, *, server: bool, names: list[str]) -> tuple[bytes, bytes, bytes]:
    ca_cert, ca_key = ensure_ca(root)
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for value in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            alt.append(x509.DNSName(value))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    return ca_cert.public_bytes(pem), cert.public_bytes(pem), _key_pem(key)


def ensure_client(root: Path) -> Path:
    """The client directory for `?pkipath=` (cacert.pem, clientcert.pem, clientkey.pem), made once."""
    directory = root / "client"
    if not (directory / "clientcert.pem").exists():
        cacert, cert, key = _issue(root, "quetzal", server=False, names=[])
        _write_public(directory / "cacert.pem", cacert)
        _write_public(directory / "clientcert.pem", cert)
        _write_private(directory / "clientkey.pem", key)
    return directory


def issue_server(root: Path, address: str) -> ServerBundle:
    """A server certificate for a host reached at address (IP or DNS name), in root/servers/<address>/."""
    if not address or "/" in address or address.startswith("."):
        raise PkiError(f"Not a host address: {address!r}.")
    directory = root / "servers" / address
    cacert, cert, key = _issue(root, address, server=True, names=[address])
    bundle = ServerBundle(
        directory=directory,
        cacert=directory / "cacert.pem",
        cert=directory / "servercert.pem",
        key=directory / "serverkey.pem",
    )
    _write_public(bundle.cacert, cacert)
    _write_public(bundle.cert, cert)
    _write_private(bundle.key, key)
    return bundle


def ensure_ssh_key(root: Path) -> Path:
    """Quetzal's SSH key for qemu+ssh hosts (ed25519, no passphrase), made once; returns the private key."""
    key = root / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        result = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "quetzal", "-f", str(key)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise PkiError(f"ssh-keygen failed: {result.stderr.strip()}")
    return key
