"""Same-origin check for every WebSocket: the page's Origin must be the server the browser asked."""

from __future__ import annotations

from urllib.parse import urlsplit

from asgiref.typing import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from django.conf import settings

_DEFAULT_PORTS = {"http": 80, "https": 443}


def header(scope: dict, name: bytes) -> str:
    """One request header of an ASGI scope, decoded ('' when absent)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _host_port(netloc: str, default: int) -> tuple[str, int] | None:
    parsed = urlsplit(f"//{netloc}")
    try:
        port = parsed.port
    except ValueError:
        return None
    if not parsed.hostname:
        return None
    return parsed.hostname.lower(), port or default


def same_origin(scope: dict) -> bool:
    """Whether Origin names the same host and port as Host, or an origin listed in CSRF_TRUSTED_ORIGINS."""
    # AllowedHostsOriginValidator only checks Origin against ALLOWED_HOSTS, which may list several
    # sites; a page on one of them must not open sockets on another with the person's cookies.
    origin = header(scope, b"origin")
    host = header(scope, b"host")
    if not origin or not host:
        return False
    if origin in getattr(settings, "CSRF_TRUSTED_ORIGINS", ()):
        return True
    parsed = urlsplit(origin)
    default = _DEFAULT_PORTS.get(parsed.scheme)
    if default is None or parsed.path not in ("", "/"):
        return False
    # The browser uses the same scheme family for the page and its socket, so one default port serves both.
    mine = _host_port(parsed.netloc, default)
    theirs = _host_port(host, default)
    return mine is not None and mine == theirs


class SameOriginMiddleware:
    """Refuse the handshake (HTTP 403) of a WebSocket whose Origin is not the site it connects to.

    Wraps the whole WebSocket router once, so a consumer added later is covered without a check of its own.
    """

    def __init__(self, app: ASGI3Application) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "websocket" and not same_origin(scope):
            await _refuse_handshake(receive, send)
            return
        await self.app(scope, receive, send)


async def _refuse_handshake(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    # Closing before accepting is how ASGI refuses a handshake; the page gets a 403 and no explanation.
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})
