"""WebSocket consumer of /ws/desktops/<id>/console/: authorise first, then pump bytes to and from VNC."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer

from desktops.console import proxy, rfb, sessions, tickets
from desktops.console.errors import ConsoleError
from desktops.console.flow import innermost_send
from desktops.console.recordfile import RecordingStats, RecordingWriter
from quetzal.origin import header
from tenants.channels import EndsWithAccess

log = logging.getLogger(__name__)

NORMAL_CLOSE = 1000
ENDED_ELSEWHERE = 4408
# The browser sent RFB the policy filter cannot check (desktops/console/rfb.py): the session ends.
POLICY_VIOLATION = 1008


def _when(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, tz=UTC) if timestamp else None


class ConsoleConsumer(EndsWithAccess, AsyncConsumer):
    """One browser's console connection to one desktop."""

    async def __call__(self, scope, receive, send) -> None:
        # Channels' own loop listens on the channel layer too and closes stale database connections
        # (a thread hop) before every message; a byte pump needs neither on its hot path.
        self.scope = scope
        self.base_send = send
        self.grant: sessions.ConsoleGrant | None = None
        self.session_key: str | None = None
        self.pump: proxy.Pump | None = None
        self.filter: rfb.ClientFilter | None = None
        self.recorder: RecordingWriter | None = None
        self.tasks: list[asyncio.Task] = []
        self.end_reason = ""
        self.finished = False
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    await self.websocket_receive(message)
                elif kind == "websocket.connect":
                    await self.websocket_connect(message)
                elif kind == "websocket.disconnect":
                    await self.websocket_disconnect(message)
        except StopConsumer:
            pass
        finally:
            await self._finish(self.end_reason or "server_stopped")

    async def websocket_connect(self, message: dict) -> None:
        # A cross-site page never gets here: SameOriginMiddleware refused its handshake (quetzal/asgi.py).
        offered = self.scope.get("subprotocols") or []
        self.subprotocol = tickets.BINARY_PROTOCOL if tickets.BINARY_PROTOCOL in offered else None
        session = self.scope.get("session")
        self.session_key = session.session_key if session is not None else None
        client = self.scope.get("client") or (None, None)
        try:
            self.grant = await database_sync_to_async(sessions.open_session)(
                token=tickets.token_from_protocols(offered),
                desktop_id=int(self.scope["url_route"]["kwargs"]["pk"]),
                user=self.scope.get("user"),
                membership=self.scope.get("membership"),
                session_key=self.session_key,
                ip=client[0],
                user_agent=header(self.scope, b"user-agent"),
            )
        except ConsoleError as error:
            await self._refuse(error)
            return
        # Authorised: accept now, so a slow libvirt answer cannot run into the server's handshake timeout.
        await self.send({"type": "websocket.accept", "subprotocol": self.subprotocol})
        try:
            host, port = await proxy.vnc_address(self.grant.host_uri, self.grant.host_address, self.grant.domain_name)
            vnc = await proxy.connect(host, port)
        except ConsoleError as error:
            self.end_reason = error.code
            await self.send({"type": "websocket.close", "code": error.close_code})
            await self._finish(error.code)
            return
        if self.grant.recording_path is not None:
            self.recorder = RecordingWriter(self.grant.recording_path, key=self.grant.recording_key)
            try:
                await self.recorder.open()
            except OSError:
                # A full or read-only disk must not cost the person their desktop.
                log.exception("cannot record console session %s", self.grant.session_id)
                self.recorder = None
        self.filter = rfb.ClientFilter(self.grant.policy)
        self.pump = proxy.Pump(vnc, innermost_send(self.base_send), recorder=self.recorder)
        self.tasks = [asyncio.create_task(self._downstream()), asyncio.create_task(self._heartbeat())]

    async def _refuse(self, error: ConsoleError) -> None:
        """Accept only to close with a code the console page explains; nothing was opened towards VNC."""
        await self.send({"type": "websocket.accept", "subprotocol": self.subprotocol})
        await self.send({"type": "websocket.close", "code": error.close_code})

    async def websocket_receive(self, message: dict) -> None:
        pump = self.pump
        data = message.get("bytes")
        if pump is None or not data:
            return  # nothing is connected yet, or a text frame: VNC only speaks binary
        try:
            data = self.filter.feed(data)
        except rfb.ProtocolViolation as violation:
            log.warning("console session %s: %s", self.grant.session_id, violation)
            self.end_reason = "policy_violation"
            await self.send({"type": "websocket.close", "code": POLICY_VIOLATION})
            raise StopConsumer from None
        if not data:
            return
        # If VNC went away, the downstream side sees EOF and closes the socket.
        with contextlib.suppress(ConnectionError, OSError):
            await pump.upstream(data)

    async def websocket_disconnect(self, message: dict) -> None:
        self.end_reason = self.end_reason or f"browser_closed:{message.get('code', '')}"
        raise StopConsumer

    async def _downstream(self) -> None:
        """Pump VNC to the browser; when VNC ends (desktop stopped or restarted) close the socket cleanly."""
        try:
            await self.pump.downstream()
        except OSError:
            # uvicorn's send() raises once the browser is gone; its websocket.disconnect ends the session.
            return
        except Exception:
            log.exception("console pump of session %s failed", self.grant.session_id)
        self.end_reason = self.end_reason or "desktop_closed"
        await self.send({"type": "websocket.close", "code": NORMAL_CLOSE})

    async def _heartbeat(self) -> None:
        """Report bytes and input now and then; stop when the session was ended elsewhere or access ended."""
        interval = sessions.heartbeat_s()
        counters = self.pump.counters
        while True:
            await asyncio.sleep(interval)
            latest = counters.input_at
            input_at = latest if latest != counters.reported_input_at else None
            try:
                alive = await database_sync_to_async(sessions.heartbeat)(
                    session_id=self.grant.session_id,
                    bytes_to_desktop=counters.to_desktop,
                    bytes_from_desktop=counters.from_desktop,
                    input_at=_when(input_at),
                    session_key=self.session_key,
                )
            except Exception:
                log.exception("console heartbeat of session %s failed", self.grant.session_id)
                continue
            counters.reported_input_at = latest
            if not alive:
                self.end_reason = "ended_elsewhere"
                await self.send({"type": "websocket.close", "code": ENDED_ELSEWHERE})
                return

    async def _finish(self, reason: str) -> None:
        """Stop the pump, close VNC and the recording, and record the end, once."""
        if self.finished or self.grant is None:
            return
        self.finished = True
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        counters = self.pump.counters if self.pump is not None else proxy.Counters()
        if self.pump is not None:
            await self.pump.close()
        stats: RecordingStats | None = None
        if self.recorder is not None:
            try:
                stats = await self.recorder.close()
            except OSError:
                log.exception("cannot finish the recording of session %s", self.grant.session_id)
        await database_sync_to_async(sessions.end_session)(
            session_id=self.grant.session_id,
            reason=reason,
            bytes_to_desktop=counters.to_desktop,
            bytes_from_desktop=counters.from_desktop,
            input_at=_when(counters.input_at),
            recording=stats,
            recording_id=self.grant.recording_id,
        )
