"""WebSocket consumer of /ws/live/: a browser subscribes to the topics its person may watch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext as _

from desktops.metrics import access
from desktops.metrics import groups as topics
from desktops.metrics.layer import live_layer
from desktops.metrics.live import EVENT_TYPE
from quetzal.origin import header
from tenants.channels import EndsWithAccess

log = logging.getLogger(__name__)

SIGNED_OUT = 4401
TOO_MANY_REFUSALS = 4429
MAX_TOPICS = 100
MAX_REFUSALS = 100
MAX_FRAME = 4096


class LiveConsumer(EndsWithAccess, AsyncWebsocketConsumer):
    """One page's live socket: JSON frames `{"subscribe": topic}` / `{"unsubscribe": topic}` in, events out."""

    async def __call__(self, scope, receive, send) -> None:
        # Channels' loop races the socket and the layer with asyncio.wait for every message; with a
        # thousand sockets per process that bookkeeping outweighs the pushes. Two plain loops instead.
        self.scope = scope
        self.base_send = send
        self.channel_layer = live_layer()
        self.channel_name = await self.channel_layer.new_channel()
        pushes = asyncio.create_task(self._pushes())
        # Refusals are read by the page's person: in the language their pages are in.
        with translation.override(socket_language(scope)):
            try:
                while True:
                    await self.dispatch(await receive())
            except StopConsumer:
                pass
            finally:
                pushes.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pushes

    async def _pushes(self) -> None:
        """Forward what the layer delivers to this socket, until the socket ends."""
        while True:
            message = await self.channel_layer.receive(self.channel_name)
            try:
                await self.dispatch(message)
            except Exception:
                # One bad event must not silence the socket for good.
                log.exception("live push to %s failed", self.channel_name)

    async def connect(self) -> None:
        self.watching: dict[str, str] = {}
        self.refusals = 0
        # Another site's page never gets here (SameOriginMiddleware, quetzal/asgi.py): no figures for its cookies.
        self.viewer = await database_sync_to_async(access.viewer_for_scope)(self.scope)
        await self.accept()
        if self.viewer is None:
            # Accepted only to close with a code, so the page stops retrying and can send the person to sign in.
            await self.close(code=SIGNED_OUT)

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections (a thread hop) before every handler; pushed
        # figures touch no database, and a thousand sockets would queue on that one thread.
        if message["type"] == EVENT_TYPE:
            await self.live_push(message)
        else:
            await super().dispatch(message)

    async def live_push(self, event: dict) -> None:
        await self.send(text_data=event["text"])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if getattr(self, "viewer", None) is None:
            return
        request = _parse(text_data)
        if request is None:
            await self._reply({"type": "error", "code": "invalid", "detail": _('Send {"subscribe": topic}.')})
            return
        action, topic = request
        if topic is None:
            await self._refuse(None, access.Refused("invalid", _("Unknown topic.")))
        elif action == "unsubscribe":
            group = self.watching.pop(topic.name, None)
            if group is not None:
                await self.channel_layer.group_discard(group, self.channel_name)
            await self._reply({"type": "unsubscribed", "topic": topic.name})
        elif topic.name in self.watching:
            await self._reply({"type": "subscribed", "topic": topic.name})
        elif len(self.watching) >= MAX_TOPICS:
            await self._refuse(
                topic.name, access.Refused("too_many_topics", _("At most %(count)d topics.") % {"count": MAX_TOPICS})
            )
        else:
            await self._subscribe(topic)

    async def _subscribe(self, topic: topics.Topic) -> None:
        try:
            group = await database_sync_to_async(access.authorise)(self.viewer, topic)
        except access.Refused as refusal:
            await self._refuse(topic.name, refusal)
            return
        self.watching[topic.name] = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self._reply({"type": "subscribed", "topic": topic.name})

    async def _refuse(self, topic: str | None, refusal: access.Refused) -> None:
        self.refusals += 1
        if self.refusals > MAX_REFUSALS:
            # Probing desktop ids one by one is not something a page does.
            await self.close(code=TOO_MANY_REFUSALS)
            return
        await self._reply({"type": "error", "code": refusal.code, "topic": topic, "detail": refusal.detail})

    async def _reply(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "watching", {}).values():
            await self.channel_layer.group_discard(group, self.channel_name)


def socket_language(scope: dict) -> str:
    """The language a page request with the socket's cookies and Accept-Language would get."""
    request = HttpRequest()
    request.COOKIES = scope.get("cookies") or {}
    if accepted := header(scope, b"accept-language"):
        request.META["HTTP_ACCEPT_LANGUAGE"] = accepted
    return translation.get_language_from_request(request)


def _parse(text: str | None) -> tuple[str, topics.Topic | None] | None:
    """The action and topic of a frame, or None when the frame is not a request at all."""
    if not text or len(text) > MAX_FRAME:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or len(body) != 1:
        return None
    action, value = next(iter(body.items()))
    if action not in ("subscribe", "unsubscribe"):
        return None
    return action, topics.parse_topic(value)
