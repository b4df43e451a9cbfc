"""The WebSocket Origin check: one middleware in front of every route of the WebSocket router."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from django.db import connections
from django.urls import URLPattern
from django.urls.converters import IntConverter, UUIDConverter
from django.urls.resolvers import RoutePattern

from quetzal.origin import same_origin
from quetzal.routing import websocket_urlpatterns
from tests.sockets import Communicator


def _routes(patterns: list[URLPattern], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    """Every endpoint of the router as (full route, pattern), nested URLRouters included."""
    for pattern in patterns:
        assert isinstance(pattern.pattern, RoutePattern), f"{pattern}: give re_path routes a sample path here"
        route = prefix + str(pattern.pattern)
        if isinstance(pattern.callback, URLRouter):
            yield from _routes(pattern.callback.routes, route)
        else:
            yield route, pattern


def _sample_path(route: str, pattern: URLPattern) -> str:
    """A concrete path the route matches: every <converter:name> filled with a value it accepts."""
    converters = pattern.pattern.converters

    def fill(match: re.Match) -> str:
        converter = converters.get(match["name"])
        if isinstance(converter, IntConverter):
            return "1"
        if isinstance(converter, UUIDConverter):
            return str(uuid.uuid4())
        return "x"

    return "/" + re.sub(r"<(?:\w+:)?(?P<name>\w+)>", fill, route)


ROUTES = list(_routes(websocket_urlpatterns))


def test_it_knows_every_websocket_route():
    # A router this test cannot walk would make the test below pass on nothing.
    names = {pattern.name for _, pattern in ROUTES}
    assert {"desktop-console-ws", "live-ws"} <= names


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("route", "pattern"), ROUTES, ids=[pattern.name or route for route, pattern in ROUTES])
async def test_it_refuses_a_foreign_origin_on_every_route(route, pattern, monkeypatch):
    from quetzal.asgi import application

    path = _sample_path(route, pattern)
    # localhost is an allowed host, so ALLOWED_HOSTS alone would let this page in: only the Origin check stops it
    foreign = [(b"origin", b"http://localhost"), (b"host", b"testserver")]
    own = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    try:
        # When a page of another site opens the route, with the real consumer behind it
        client = Communicator(application, path, headers=foreign)
        connected, _ = await client.connect()
        # Then the handshake itself is refused
        assert not connected
        await client.wait()

        # And the same path from the site's own page does reach the route (so the refusal came from the Origin)
        reached: list[str] = []

        async def probe(scope, receive, send) -> None:
            reached.append(scope["path"])
            await receive()
            await send({"type": "websocket.accept"})
            await receive()

        monkeypatch.setattr(pattern, "callback", probe)
        client = Communicator(application, path, headers=own)
        connected, _ = await client.connect()
        assert connected and reached == [path]
        await client.disconnect()
    finally:
        await database_sync_to_async(connections.close_all)()


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://testserver", "testserver", True),
        ("https://desk.example", "desk.example", True),
        ("https://desk.example", "desk.example:443", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", False),
        ("http://evil.example", "desk.example", False),
        ("http://desk.example.evil.example", "desk.example", False),
        ("null", "desk.example", False),
        ("", "desk.example", False),
        ("http://desk.example", "", False),
    ],
)
def test_it_checks_that_origin_and_host_are_the_same_site(origin, host, allowed):
    headers = [(b"host", host.encode())] if host else []
    if origin:
        headers.append((b"origin", origin.encode()))
    assert same_origin({"headers": headers}) is allowed


def test_it_accepts_an_origin_the_operator_trusts(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example"]
    scope = {"headers": [(b"origin", b"https://portal.example"), (b"host", b"internal:8000")]}
    assert same_origin(scope)
