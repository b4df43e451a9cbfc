"""Channels: WebSockets resolve their tenant like pages and the API do, and end when the access behind them ends.

Every socket of a signed-in person joins four groups on the default channel layer: its browser
session, its person, its membership (tenant + person) and its tenant. Signing out, losing or
downgrading the membership, being deactivated or the tenant's suspension send one "access ended"
message to the matching group (`end_sockets`), and `EndsWithAccess` closes each such socket at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from tenants.addresses import scope_client_ip
from tenants.models import Membership
from tenants.resolution import resolve_scope_tenant

log = logging.getLogger(__name__)

ACCESS_ENDED = "quetzal.access.ended"
# Close codes the pages understand (static/js/live.js, console.js): sign in again / access is gone.
SIGNED_OUT = 4401
ACCESS_CHANGED = 4403
# The Redis layer forgets group members after a day (group_expiry): long consoles rejoin hourly.
REJOIN_EVERY_S = 3600.0


# The pages' counterpart is tenants.middleware.ActiveTenantMiddleware (Django, per HTTP request).
class WebSocketTenantMiddleware:
    """Channels middleware: put `membership` and `tenant` into the scope (None when anonymous or tenantless)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        membership = await database_sync_to_async(resolve_scope_tenant)(scope)
        scope = dict(scope, membership=membership, tenant=membership.tenant if membership else None)
        client = scope.get("client")
        if client:
            # Consumers read the client from the scope: give them the address HTTP requests get.
            scope["client"] = (scope_client_ip(scope), *client[1:])
        return await self.inner(scope, receive, send)


# --- groups ------------------------------------------------------------------------------------


def session_group(session_key: str) -> str:
    # The key itself is a credential: the group name carries only a digest of it.
    return f"quetzal.session.{hashlib.sha256(session_key.encode()).hexdigest()[:40]}"


def user_group(user_id: int) -> str:
    return f"quetzal.user.{user_id}"


def member_group(tenant_id: int, user_id: int) -> str:
    return f"quetzal.member.{tenant_id}.{user_id}"


def tenant_group(tenant_id: int) -> str:
    return f"quetzal.tenant.{tenant_id}"


def groups_for(scope: dict) -> list[str]:
    """The groups a socket joins: none for an anonymous one."""
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return []
    groups = [user_group(user.pk)]
    session = scope.get("session")
    if session is not None and session.session_key:
        groups.append(session_group(session.session_key))
    membership = scope.get("membership")
    if membership is not None:
        groups += [member_group(membership.tenant_id, user.pk), tenant_group(membership.tenant_id)]
    return groups


def end_sockets(groups: Iterable[str], *, code: int, reason: str) -> None:
    """Close every socket in these groups, once the caller's transaction has committed."""
    groups = list(groups)
    transaction.on_commit(lambda: _send_end(groups, code=code, reason=reason))


def _send_end(groups: list[str], *, code: int, reason: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": ACCESS_ENDED, "code": code, "reason": reason}

    async def send_all() -> None:
        for group in groups:
            await layer.group_send(group, message)

    try:
        async_to_sync(send_all)()
    except Exception:
        # Signing out must work while Redis is down; consoles still notice at their next heartbeat.
        log.exception("could not tell sockets in %s that access ended (%s)", groups, reason)


# --- the consumer side ---------------------------------------------------------------------------


def access_ended(scope: dict) -> tuple[int, str] | None:
    """(close code, reason) if the access a socket was opened with has already ended, else None.

    The reasons are those the "access ended" messages carry, so a socket closed by this late check
    records the same as one closed by the message it joined its groups too late to hear.
    """
    session = scope.get("session")
    key = session.session_key if session is not None else None
    if key and not import_module(settings.SESSION_ENGINE).SessionStore().exists(key):
        return SIGNED_OUT, "signed_out"
    membership = scope.get("membership")
    if membership is None:
        return None
    current = Membership.objects.filter(pk=membership.pk).values_list("role", "tenant__status").first()
    if current is None:
        return ACCESS_CHANGED, "removed"
    role, status = current
    if status != membership.tenant.status:
        return ACCESS_CHANGED, status
    if role != membership.role:
        return ACCESS_CHANGED, "role_changed"
    return None


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class AccessGuard:
    """One socket's membership of its groups, and the close when one of them says access ended."""

    def __init__(self, scope: dict, send: Send) -> None:
        self.scope = scope
        # Named so desktops.console.flow.innermost_send unwraps to the server's send for the byte pump.
        self.real_send = send
        self.groups = groups_for(scope)
        self.ended = asyncio.Event()
        self.code = ACCESS_CHANGED
        self.reason = ""
        self.closed = False
        self.layer = None
        self.channel = ""
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Join the groups in the background: the consumer's handshake does not wait for Redis."""
        if self.groups:
            self.tasks = [asyncio.create_task(self._watch())]

    async def _watch(self) -> None:
        try:
            self.layer = get_channel_layer()
            self.channel = await self.layer.new_channel()
            await self._join()
        except Exception:
            # Without a layer the socket still works; consoles fall back to their heartbeat check.
            log.exception("socket could not join its access groups")
            self.layer = None
            return
        self.tasks.append(asyncio.create_task(self._rejoin()))
        # Access may have ended between the scope being resolved and the groups joined.
        ended = await database_sync_to_async(access_ended)(self.scope)
        if ended is not None:
            await self.end(*ended)
            return
        await self._listen()

    async def _join(self) -> None:
        await asyncio.gather(*(self.layer.group_add(group, self.channel) for group in self.groups))

    async def _listen(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            if message.get("type") == ACCESS_ENDED:
                await self.end(int(message.get("code", ACCESS_CHANGED)), str(message.get("reason", "")))
                return

    async def _rejoin(self) -> None:
        while True:
            await asyncio.sleep(REJOIN_EVERY_S)
            with contextlib.suppress(Exception):
                await self._join()

    async def end(self, code: int, reason: str) -> None:
        """Close the socket with `code` and make the consumer's next receive a disconnect."""
        if self.ended.is_set():
            return
        self.code, self.reason = code, reason
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.real_send({"type": "websocket.close", "code": code})
        self.ended.set()

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return  # the socket is closed: late pushes go nowhere instead of raising in the server
        if message.get("type") == "websocket.close":
            self.closed = True
        await self.real_send(message)

    def receive_from(self, receive: Receive) -> Receive:
        ended = self.ended

        async def guarded_receive() -> dict[str, Any]:
            if not ended.is_set():
                incoming = asyncio.ensure_future(receive())
                waiting = asyncio.ensure_future(ended.wait())
                done, _ = await asyncio.wait({incoming, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if incoming in done:
                    waiting.cancel()
                    return incoming.result()
                incoming.cancel()
            return {"type": "websocket.disconnect", "code": self.code, "reason": self.reason}

        return guarded_receive

    async def stop(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.layer is not None:
            for group in self.groups:
                with contextlib.suppress(Exception):
                    await self.layer.group_discard(group, self.channel)


class EndsWithAccess:
    """Consumer mixin: the socket closes within moments of its person's access ending.

    It wraps the ASGI app `as_asgi()` builds (the consumers define their own `__call__` loops), so
    the consumer sees an ordinary `websocket.disconnect` with the close code; one that records why
    it ended (the console's `end_reason`) gets "access_ended:<reason>".
    """

    @classmethod
    def as_asgi(cls, **initkwargs):
        async def app(scope, receive, send):
            consumer = cls(**initkwargs)
            guard = AccessGuard(scope, send)
            await guard.start()
            try:
                return await consumer(scope, _noting_reason(consumer, guard, guard.receive_from(receive)), guard.send)
            finally:
                await guard.stop()

        # As channels' own as_asgi does: routing and tests read these.
        app.consumer_class = cls
        app.consumer_initkwargs = initkwargs
        functools.update_wrapper(app, cls, updated=())
        return app


def _noting_reason(consumer, guard: AccessGuard, receive: Receive) -> Receive:
    async def receive_noting_reason() -> dict[str, Any]:
        message = await receive()
        if guard.ended.is_set() and message.get("type") == "websocket.disconnect" and hasattr(consumer, "end_reason"):
            consumer.end_reason = consumer.end_reason or f"access_ended:{guard.reason}"[:64]
        return message

    return receive_noting_reason
