"""The MCP server (desktops.mcp_server) over streamable HTTP at /mcp/, behind the API's token authentication.

Every HTTP request stands alone (the SDK's stateless mode): it passes the door here — Host in ALLOWED_HOSTS and a
same-site Origin (the MCP spec's DNS-rebinding rule), a usable API token (the REST API's own
ApiTokenAuthentication), a tenant that allows automation, a bounded body — and is then served by a server built for
that token alone. So a revoked token or a policy switched off stops the very next request, and no state of one
caller's requests can reach another's. Refusals are JSON-RPC errors with the fitting HTTP status (401, 403, 413, 429).

Each request spends one from its token's budget (tenants/api/throttling.py), the same budget the token's REST calls
spend, so automation cannot double its rate by switching doors (over it: 429 `throttled`). An attempt without a
usable token, or with none, counts against its address's budget of failed attempts, the one the REST API's token
failures count against too; once that is spent, the address's token requests are refused before any lookup (429
`too_many_failed_tokens`), so guessing tokens stops. Both 429s carry Retry-After.

The route lives in the ASGI router, outside Django's URL configuration, so tests/test_api_permissions.py (which
walks that configuration) does not see it: the door below is its guard, and desktops/tests/test_mcp_http.py proves it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections, connections
from django.utils import translation
from django.utils.translation import gettext as _
from rest_framework.exceptions import AuthenticationFailed

from desktops.services.automation_tokens import require_automation_allowed
from quetzal.errors import ServiceError
from quetzal.origin import header, same_origin
from tenants.addresses import client_ip
from tenants.api.authentication import ApiTokenAuthentication, TooManyFailedTokens, refuse_if_too_many_failures
from tenants.api.throttling import Spent, count_failed_token, spend, token_bucket
from tenants.models import ApiToken
from tenants.services.tokens import membership_of

Scope = dict[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The largest tool call is a command's argv and stdin (48 KiB) or a text to type (2000 characters): even with every
# character JSON-escaped six-fold (\u0000) that is under 300 KiB, so half a MiB refuses only what no tool takes.
MAX_BODY_BYTES = 512 * 1024
# JSON-RPC's "invalid request": the SDK answers its own HTTP-level refusals with it too.
INVALID_REQUEST = -32600


class Refused(Exception):
    """A request stopped at the door: its HTTP status, stable code and human message."""

    def __init__(self, status: int, code: str, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after_s = retry_after_s


def _throttled(spent: Spent, message: str) -> Refused:
    return Refused(429, "throttled", message % {"seconds": spent.retry_after_s}, retry_after_s=spent.retry_after_s)


async def mcp_application(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI app for /mcp/: the door's checks, then the SDK's streamable HTTP transport for this one request."""
    if scope["type"] != "http":
        return
    request = ASGIRequest(scope, io.BytesIO(b""))
    with translation.override(translation.get_language_from_request(request)):
        try:
            _check_site(request, scope)
            if scope["method"] != "POST":
                # Each POST gets its answer on its own response; a server built for one request has nothing to push
                # on a standing GET stream or a session to DELETE: the spec's answer for both is 405.
                raise Refused(405, "method_not_allowed", _("Send MCP messages with POST."))
            raw, ip = await sync_to_async(_authenticate, thread_sensitive=False)(request)
            body = await _read_body(receive)
        except Refused as refused:
            await _refuse(send, refused)
            return
    await _serve(scope, body, receive, send, raw_token=raw, ip=ip)


def _check_site(request: ASGIRequest, scope: Scope) -> None:
    """Host must be ours and Origin, when a browser sends one, this site: a rebound DNS name gets nowhere."""
    try:
        request.get_host()
    except DisallowedHost:
        raise Refused(421, "invalid_host", _("This server does not answer to that host name.")) from None
    if header(scope, b"origin") and not same_origin(scope):
        raise Refused(403, "invalid_origin", _("Requests from another site's pages are refused."))


def _authenticate(request: ASGIRequest) -> tuple[str, str | None]:
    """The raw secret of a usable API token within its budget, its tenant allowing automation; the caller's address."""
    close_old_connections()
    ip = client_ip(request)
    try:
        token = _token(request, ip)
        spent = spend(token_bucket(token))
        if not spent.allowed:
            raise _throttled(spent, _("Too many requests with this token; try again in %(seconds)d seconds."))
        if membership_of(token) is None:
            raise Refused(403, "no_tenant", _("The token's person is no longer a member of its organisation."))
        require_automation_allowed(token.tenant)
    except ServiceError as error:
        raise Refused(error.status, error.code, error.detail) from None
    finally:
        connections.close_all()  # this pool thread is not Django's: give the connection back now
    # authenticate() read exactly two words, the second being the secret.
    raw = request.headers["Authorization"].split()[1]
    return raw, ip


def _token(request: ASGIRequest, ip: str | None) -> ApiToken:
    """The request's usable API token; a missing or unusable one counts as a failed attempt of its address."""
    try:
        found = ApiTokenAuthentication().authenticate(request)
        if found is None:
            # At this door a token is the only way in: asking without one is a failed attempt like a wrong one.
            refuse_if_too_many_failures(ip)
            count_failed_token(ip)
    except TooManyFailedTokens as error:
        raise Refused(429, error.default_code, str(error.detail), retry_after_s=error.wait) from None
    except AuthenticationFailed as error:
        raise Refused(401, "invalid_token", str(error.detail)) from None
    if found is None:
        raise Refused(401, "token_required", _("Send an API token: Authorization: Bearer qz_…"))
    return found[1]


async def _read_body(receive: Receive) -> bytes:
    """The whole request body, refused past MAX_BODY_BYTES (declared or actually sent)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body.extend(message.get("body", b""))
        if len(body) > MAX_BODY_BYTES:
            raise Refused(
                413, "request_too_large", _("A request may be at most %(kib)d KiB.") % {"kib": MAX_BODY_BYTES // 1024}
            )
        if not message.get("more_body", False):
            break
    return bytes(body)


async def _serve(scope: Scope, body: bytes, receive: Receive, send: Send, *, raw_token: str, ip: str | None) -> None:
    # The SDK (Starlette, pydantic models) loads with the first MCP request, not in every web process.
    from mcp.server.transport_security import TransportSecuritySettings

    from desktops.mcp_server import build_server

    server = build_server(raw_token, ip=ip)
    # Host and Origin were checked above against the site's own settings; the SDK's lists would duplicate them.
    server.streamable_http_app(
        stateless_http=True,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, the only news is the client going away: the server's own receive waits for that.
        return await receive()

    async with server.session_manager.run():
        await server.session_manager.handle_request(scope, replay, send)


def _data(refused: Refused) -> dict[str, Any]:
    data: dict[str, Any] = {"code": refused.code}
    if refused.retry_after_s is not None:
        data["retry_after_s"] = refused.retry_after_s
    return data


async def _refuse(send: Send, refused: Refused) -> None:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": INVALID_REQUEST, "message": refused.message, "data": _data(refused)},
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refused.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="quetzal"'))
    elif refused.status == 405:
        headers.append((b"allow", b"POST"))
    if refused.retry_after_s is not None:
        headers.append((b"retry-after", str(refused.retry_after_s).encode()))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
