"""Console test helpers: a fake VNC server, a running desktop whose VNC port points at it, browser sessions."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from desktops.console import tickets
from desktops.models import Desktop
from desktops.services import spec
from desktops.tests.factories import DesktopFactory
from hosts.hypervisor import GraphicsSpec, get_hypervisor
from tests.fixtures import api_client
from tests.sockets import Communicator

GREETING = b"RFB 003.008\n"


@dataclass
class FakeVnc:
    """A TCP server standing in for QEMU's VNC server: greets, records what it receives, can hang up."""

    greeting: bytes = GREETING
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        writer.write(self.greeting)
        await writer.drain()
        while data := await reader.read(65536):
            self.received.extend(data)
        self.eof.set()
        writer.close()

    async def send(self, data: bytes) -> None:
        """Send bytes to every connected client."""
        for writer in self.writers:
            writer.write(data)
            await writer.drain()

    async def hang_up(self) -> None:
        """Close every connection, as QEMU does when the VM stops."""
        for writer in self.writers:
            writer.close()

    async def wait_received(self, size: int, timeout: float = 5.0) -> bytes:
        """Wait until at least `size` bytes arrived."""
        async with asyncio.timeout(timeout):
            while len(self.received) < size:
                await asyncio.sleep(0.01)
        return bytes(self.received)


@pytest.fixture(name="fake_vnc")
async def fake_vnc_fixture() -> AsyncIterator[FakeVnc]:
    """A fake VNC server on an ephemeral port (import this name; tests ask for `fake_vnc`)."""
    fake = FakeVnc()
    # Port 0 picks an ephemeral port, which is always within libvirt's 5900..65535 for fixed VNC ports.
    fake.server = await asyncio.start_server(fake._handle, "127.0.0.1", 0)
    yield fake
    fake.server.close()
    for writer in fake.writers:
        writer.close()


@pytest.fixture(name="thread_connections")
async def thread_connections_fixture() -> AsyncIterator[None]:
    """Close the worker thread's database connection after a test (CONN_MAX_AGE keeps it open)."""
    yield
    await database_sync_to_async(connections.close_all)()


def run_domain_on(desktop: Desktop, port: int) -> None:
    """Define and start the desktop's domain in the host's libvirt test driver, its VNC on `port`."""
    base = spec.domain_spec(desktop, disk_path="/dev/null", seed_path=None, image_copy=None, host=desktop.host)
    domain = dataclasses.replace(base, graphics=GraphicsSpec(listen_address="127.0.0.1", autoport=False, port=port))
    hv = get_hypervisor(desktop.host.uri)
    hv.define(domain)
    hv.start(domain.name)


def running_desktop(world, host, template, port: int, *, owner=None) -> Desktop:
    """A running desktop of `owner` (default: the world's member) whose console is at 127.0.0.1:port."""
    desktop = DesktopFactory(world=world, user=owner or world.member, template=template, name="Console desk", host=host)
    run_domain_on(desktop, port)
    return desktop


@dataclass(frozen=True)
class Browser:
    """A signed-in browser: its session cookie and an API client sharing that session."""

    user: object
    client: object
    session_key: str

    def ticket(self, desktop: Desktop) -> str:
        """Ask the API for a console ticket, as the console page does."""
        response = self.client.post(f"/api/v1/desktops/{desktop.pk}/console-ticket/")
        assert response.status_code == 201, response.content
        return response.json()["ticket"]

    def headers(self, *, origin: str = "http://testserver", host: str = "testserver") -> list[tuple[bytes, bytes]]:
        return [
            (b"origin", origin.encode()),
            (b"host", host.encode()),
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={self.session_key}".encode()),
            (b"user-agent", b"pytest-browser"),
        ]


def browser(user, tenant) -> Browser:
    client = api_client(user, tenant)
    return Browser(user=user, client=client, session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


def communicator(desktop_id: int, *, ticket: str | None, headers: list[tuple[bytes, bytes]]) -> Communicator:
    """A WebSocket client against the whole ASGI stack (origin validator, auth, tenant middleware)."""
    from quetzal.asgi import application

    protocols = [tickets.BINARY_PROTOCOL] + ([tickets.PROTOCOL_PREFIX + ticket] if ticket else [])
    client = Communicator(application, f"/ws/desktops/{desktop_id}/console/", headers=headers, subprotocols=protocols)
    client.scope["client"] = ("127.0.0.1", 50123)
    return client


adb = database_sync_to_async
