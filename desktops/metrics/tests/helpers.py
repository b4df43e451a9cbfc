"""Helpers of the metrics tests: launched desktops, listening to live groups, live sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings

from desktops.metrics.layer import live_layer
from desktops.models import Desktop
from desktops.services.requests import request_create
from tests.fixtures import login_client
from tests.sockets import Communicator


def launch(world, template, work, *, user=None) -> Desktop:
    """A running desktop of `user` (default: the world's member), made by the real lifecycle on the test driver."""
    with work():
        desktop, _ = request_create(tenant=world.tenant, user=user or world.member, template=template)
    desktop.refresh_from_db()
    assert desktop.state == "running", desktop.status_reason
    return desktop


def capture(watchers: dict[str, str], action: Callable[[], object], *, quiet_s: float = 0.5) -> dict[str, list]:
    """Join each group with its own channel as a consumer would, run `action`, return what each one got."""
    # All in one event loop: a Redis pub/sub layer keeps its subscriptions per loop.

    async def run() -> dict[str, list]:
        layer = live_layer()
        channels = {}
        for label, group in watchers.items():
            channels[label] = await layer.new_channel()
            await layer.group_add(group, channels[label])
        await sync_to_async(action)()
        got: dict[str, list] = {}
        for label, channel in channels.items():
            got[label] = []
            while True:
                try:
                    event = await asyncio.wait_for(layer.receive(channel), quiet_s)
                except TimeoutError:
                    break
                got[label].append(json.loads(event["text"]))
            await layer.group_discard(watchers[label], channel)
        return got

    return async_to_sync(run)()


def session_headers(user=None, tenant=None, *, origin: str = "http://testserver") -> list[tuple[bytes, bytes]]:
    """Headers of a browser on testserver, signed in as `user` in `tenant` (anonymous without a user)."""
    headers = [(b"origin", origin.encode()), (b"host", b"testserver")]
    if user is not None:
        client = login_client(user, tenant)
        cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        headers.append((b"cookie", cookie.encode()))
    return headers


def live_socket(headers: list[tuple[bytes, bytes]]) -> Communicator:
    """A WebSocket client of /ws/live/ through the whole ASGI stack (origin validator, auth, tenant)."""
    from quetzal.asgi import application

    return Communicator(application, "/ws/live/", headers=headers)
