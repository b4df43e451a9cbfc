"""Reading a domain's TXT records for its ownership proof, with dnspython: one short lookup, every failure a
sentence (never an exception the page turns into a 500).

The nameserver is SSO_DNS_NAMESERVER (host or host:port) or, unset, the system resolver. The answer is read with no
cache of ours, so a record removed later is seen as gone at the next check (up to the record's TTL at a caching
resolver in between).
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from django.conf import settings
from django.utils.translation import gettext as _

# Bounded: a domain could publish thousands of TXT strings; we read this many.
MAX_VALUES = 50


@dataclass(frozen=True)
class TxtAnswer:
    """The TXT values found at a name, or why none could be read; `definite`: the DNS said so (not a timeout)."""

    values: tuple[str, ...] = ()
    problem: str = ""
    code: str = ""
    definite: bool = True


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
        return TxtAnswer(problem=_("There is no DNS name %(name)s (NXDOMAIN).") % {"name": name}, code="nxdomain")
    except dns.resolver.NoAnswer:
        return TxtAnswer(problem=_("%(name)s has no TXT record.") % {"name": name}, code="no_txt")
    except dns.resolver.LifetimeTimeout:
        seconds = settings.SSO_DNS_TIMEOUT_SECONDS
        message = _("The DNS server did not answer within %(seconds)s s; try again later.") % {"seconds": seconds}
        return TxtAnswer(problem=message, code="timeout", definite=False)
    except dns.resolver.NoNameservers as error:
        message = _("No DNS server could answer for %(name)s (%(detail)s).") % {"name": name, "detail": _short(error)}
        return TxtAnswer(problem=message, code="servfail", definite=False)
    except (dns.exception.DNSException, OSError) as error:
        message = _("The DNS lookup failed: %(detail)s") % {"detail": _short(error)}
        return TxtAnswer(problem=message, code="dns_error", definite=False)
    return TxtAnswer(values=tuple(_text(rdata) for rdata in list(answer)[:MAX_VALUES]))


def _short(error: BaseException) -> str:
    return (str(error) or type(error).__name__)[:200]
