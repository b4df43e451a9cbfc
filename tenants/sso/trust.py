"""The CA certificates a tenant gives its LDAP provider: the only trust anchors of that directory's TLS.

An organisation whose directory's certificate is issued by its own CA pastes that CA here (PEM; a bundle of a few
CAs is fine, text around them is dropped). Checked when saved: PEM certificates only (never a key), each a CA, valid
now, the text bounded.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.utils.translation import gettext

MAX_PEM_BYTES = 64 * 1024
MAX_CERTIFICATES = 10
BEGIN = "-----BEGIN CERTIFICATE-----"


class CaProblem(ValueError):
    """Why the pasted text is not a CA certificate Quetzal can trust (a sentence in the reader's language)."""


@dataclass(frozen=True)
class CaBundle:
    """The certificates read from the text, and the text to store (the certificates only, re-encoded)."""

    pem: str
    certificates: tuple[x509.Certificate, ...]

    @property
    def subjects(self) -> str:
        return "; ".join(c.subject.rfc4514_string() for c in self.certificates)

    @property
    def expires(self) -> datetime.datetime:
        return min(c.not_valid_after_utc for c in self.certificates)


def read(text: str, *, now: datetime.datetime | None = None) -> CaBundle:
    """The CA certificates in `text`; CaProblem when it is not one to several valid CA certificates in PEM."""
    data = text.strip().encode()
    if len(data) > MAX_PEM_BYTES:
        raise CaProblem(gettext("At most %(kib)s KiB of certificates.") % {"kib": MAX_PEM_BYTES // 1024})
    if b"PRIVATE KEY" in data:
        raise CaProblem(gettext("This is a private key: paste only the CA's certificate, and keep the key secret."))
    if BEGIN.encode() not in data:
        raise CaProblem(gettext("Not a PEM certificate: paste the text that starts with %(begin)s.") % {"begin": BEGIN})
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise CaProblem(gettext("Not a readable PEM certificate: %(error)s") % {"error": str(error)[:200]}) from error
    if len(certificates) > MAX_CERTIFICATES:
        raise CaProblem(gettext("At most %(count)s certificates.") % {"count": MAX_CERTIFICATES})
    moment = now or datetime.datetime.now(datetime.UTC)
    for certificate in certificates:
        _check(certificate, moment)
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)
    return CaBundle(pem=pem, certificates=tuple(certificates))


def _check(certificate: x509.Certificate, now: datetime.datetime) -> None:
    subject = certificate.subject.rfc4514_string()[:200]
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CaProblem(
            gettext("%(subject)s is not a CA certificate: paste the CA that issued the server's certificate.")
            % {"subject": subject}
        )
    if certificate.not_valid_after_utc <= now:
        raise CaProblem(
            gettext("%(subject)s expired on %(date)s.")
            % {"subject": subject, "date": certificate.not_valid_after_utc.date().isoformat()}
        )
    if certificate.not_valid_before_utc > now:
        raise CaProblem(
            gettext("%(subject)s is not valid before %(date)s.")
            % {"subject": subject, "date": certificate.not_valid_before_utc.date().isoformat()}
        )


def summary(pem: str) -> str:
    """What the provider's page says of its stored CA: whom it names and until when, or what is wrong with it now."""
    try:
        bundle = read(pem)
    except CaProblem as problem:
        return str(problem)
    return gettext("%(subjects)s, valid until %(date)s.") % {
        "subjects": bundle.subjects[:500],
        "date": bundle.expires.date().isoformat(),
    }
