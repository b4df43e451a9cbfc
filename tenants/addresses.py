"""The caller's address: the proxy's X-Forwarded-For counts only when the operator says proxies are in front.

One rule for lockout (django-axes), the audit log and WebSockets, so a forged header moves none of them.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def _valid(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def trusted_address(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client address given the TCP peer and the X-Forwarded-For header.

    With TRUSTED_PROXY_COUNT = n > 0, each of our n proxies appended the address it saw, so the
    client is the n-th entry from the right; whatever the client wrote to the left of it is ignored.
    A header shorter than that did not come through all our proxies: the peer is then the truth.
    """
    count = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if count and forwarded_for:
        entries = [entry for entry in forwarded_for.split(",") if entry.strip()]
        if len(entries) >= count:
            found = _valid(entries[-count])
            if found is not None:
                return found
    return _valid(peer) if peer else None


def client_ip(request) -> str | None:
    """The address of an HTTP request's client (AXES_CLIENT_IP_CALLABLE and the audit log)."""
    if request is None:
        return None
    meta = request.META
    return trusted_address(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))


def scope_client_ip(scope: dict) -> str | None:
    """The address of a WebSocket's client, by the same rule as HTTP requests."""
    peer = (scope.get("client") or (None, None))[0]
    forwarded = None
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-for":
            # Several header lines are one comma-separated list, in order (RFC 9110 5.3).
            text = value.decode("latin-1")
            forwarded = f"{forwarded},{text}" if forwarded else text
    return trusted_address(peer, forwarded)
