"""Reading a domain's TXT records for its ownership proof, with dnspython: one short lookup, every failure a code
with its details (never an exception the page turns into a 500).

The nameserver is SSO_DNS_NAMESERVER (host or host:port) or, unset, the system resolver. The answer is read with no
cache of ours, so a record removed later is seen as gone at the next check (up to the record's TTL at a caching
resolver in between). A problem is kept as its code and details and put into words when shown, so each reader gets
their language (the periodic check runs in none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from django.conf import settings
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

# Bounded: a domain could publish thousands of TXT strings; we read this many.
MAX_VALUES = 50
MAX_DETAIL = 200

MESSAGES = {
    "nxdomain": _("There is no DNS name %(name)s (NXDOMAIN)."),
    "no_txt": _("%(name)s has no TXT record."),
    "wrong_value": _("%(name)s has TXT records, but not %(value)s (found %(found)s)."),
    "timeout": _("The DNS server did not answer within %(seconds)s s; try again later."),
    "servfail": _("No DNS server could answer for %(name)s (%(detail)s)."),
    "dns_error": _("The DNS lookup failed: %(detail)s"),
    "verified_elsewhere": _("Another organisation has verified %(domain)s."),
}


def describe(code: str, params: Mapping[str, object]) -> str:
    """A stored problem in the reader's language ("" for none; an unknown code or bad details: the code itself)."""
    if not code:
        return ""
    try:
        return gettext(str(MESSAGES[code])) % dict(params)
    except (KeyError, TypeError, ValueError):
        return code


@dataclass(frozen=True)
class TxtAnswer:
    """The TXT values found at a name, or why none could be read; `definite`: the DNS said so (not a timeout)."""

    values: tuple[str, ...] = ()
    code: str = ""
    params: dict[str, str] = field(default_factory=dict)
    definite: bool = True

    @property
    def problem(self) -> str:
        return describe(self.code, self.params)


def resolver() -> dns.resolver.Resolver:
    """The system resolver, or the configured nameserver only; a short lifetime for the whole lookup."""
    nameserver = settings.SSO_DNS_NAMESERVER
    found = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        found.nameservers = [nameserver[0]]
        found.port = nameserver[1]
    found.timeout = found.lifetime = float(settings.SSO_DNS_TIMEOUT_SECONDS)
    found.cache = None
    return found


def _text(rdata) -> str:
    # A TXT record's value is one or more strings of at most 255 bytes; a long value is split and joined again.
    return b"".join(rdata.strings).decode("utf-8", errors="replace")


def txt_values(name: str) -> TxtAnswer:
    """The TXT values at `name`."""
    try:
        answer = resolver().resolve(dns.name.from_text(name), dns.rdatatype.TXT, search=False)
    except dns.resolver.NXDOMAIN:
        return TxtAnswer(code="nxdomain", params={"name": name})
    except dns.resolver.NoAnswer:
        return TxtAnswer(code="no_txt", params={"name": name})
    except dns.resolver.LifetimeTimeout:
        seconds = str(settings.SSO_DNS_TIMEOUT_SECONDS)
        return TxtAnswer(code="timeout", params={"seconds": seconds}, definite=False)
    except dns.resolver.NoNameservers as error:
        return TxtAnswer(code="servfail", params={"name": name, "detail": _short(error)}, definite=False)
    except (dns.exception.DNSException, OSError) as error:
        return TxtAnswer(code="dns_error", params={"detail": _short(error)}, definite=False)
    return TxtAnswer(values=tuple(_text(rdata) for rdata in list(answer)[:MAX_VALUES]))


def _short(error: BaseException) -> str:
    return (str(error) or type(error).__name__)[:MAX_DETAIL]
