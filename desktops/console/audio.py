"""Desktop sound in the browser: a second VNC connection that negotiates only QEMU's audio stream.

noVNC has no audio, so the proxy opens its own shared RFB connection to the desktop's VNC server, asks
for nothing but the QEMU audio pseudo-encoding (never a framebuffer update) and relays what it gets as
binary WebSocket frames on /ws/desktops/<id>/audio/: one Opus packet per 20 ms when the browser asked for
`?codec=opus` (it can decode it) and this machine has libopus, else the raw PCM (signed 16-bit little-endian,
stereo, 48 kHz). The first frame is text naming which, e.g. {"codec": "opus", "rate": 48000, "channels": 2}.
That socket is authorised by the console's own ticket, once, after the console used it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from urllib.parse import parse_qs

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer

from desktops.console import opus, proxy, sessions, tickets
from desktops.console.errors import ConsoleError, ConsoleUnavailable
from tenants.channels import EndsWithAccess

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
CHANNELS = 2
FORMAT_S16 = 3  # QEMU's audio format codes: 0 U8, 1 S8, 2 U16, 3 S16, 4 U32, 5 S32
ENCODING_QEMU_AUDIO = -259
AUDIO_END, AUDIO_BEGIN, AUDIO_DATA = 0, 1, 2
# Pseudo rectangles without payload a server may send unasked: the audio ack, DesktopSize, LastRect.
_EMPTY_PSEUDO_ENCODINGS = frozenset({ENCODING_QEMU_AUDIO, -223, -224})
# One WebSocket frame carries at most this much sound (~85 ms): small enough to play without a long buffer.
FRAME_BYTES = 16 * 1024
MAX_AUDIO_CHUNK = 4 * 1024 * 1024
HANDSHAKE_TIMEOUT_S = 10.0


class AudioProtocolError(Exception):
    """The VNC server said something this audio-only client does not expect."""


async def _exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError as error:
        raise ConnectionError("VNC closed the audio connection") from error


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """RFB 3.8 with no authentication (the proxy's side of QEMU), shared, then ask for audio only."""
    version = await _exactly(reader, 12)
    if not version.startswith(b"RFB "):
        raise AudioProtocolError(f"not a VNC server: {version!r}")
    writer.write(b"RFB 003.008\n")
    (count,) = await _exactly(reader, 1)
    types = await _exactly(reader, count) if count else b""
    if 1 not in types:
        raise AudioProtocolError("the VNC server asks for authentication")
    writer.write(b"\x01")
    if struct.unpack(">I", await _exactly(reader, 4))[0] != 0:
        raise AudioProtocolError("VNC refused the audio connection")
    writer.write(b"\x01")  # ClientInit: shared, so the person's console stays connected
    server_init = await _exactly(reader, 24)
    await _exactly(reader, struct.unpack_from(">I", server_init, 20)[0])  # the desktop's name
    writer.write(struct.pack(">BxHi", 2, 1, ENCODING_QEMU_AUDIO))
    writer.write(struct.pack(">BBHBBI", 255, 1, 2, FORMAT_S16, CHANNELS, SAMPLE_RATE))
    writer.write(struct.pack(">BBH", 255, 1, 0))  # enable
    await writer.drain()


async def read_audio(reader: asyncio.StreamReader):
    """Yield PCM chunks from the server's messages (begin/end markers and bells are skipped)."""
    while True:
        (kind,) = await _exactly(reader, 1)
        if kind == 2:  # Bell
            continue
        if kind == 0:
            # QEMU acknowledges the audio pseudo-encoding with a FramebufferUpdate of pseudo rectangles that
            # carry no pixels; real pixels never come, since this connection asks for none.
            (count,) = struct.unpack(">xH", await _exactly(reader, 3))
            for _ in range(count):
                encoding = struct.unpack(">HHHHi", await _exactly(reader, 12))[4]
                if encoding not in _EMPTY_PSEUDO_ENCODINGS:
                    raise AudioProtocolError(f"unexpected rectangle encoding {encoding} on the audio connection")
            continue
        if kind != 255:
            raise AudioProtocolError(f"unexpected server message {kind} on the audio connection")
        subtype, operation = struct.unpack(">BH", await _exactly(reader, 3))
        if subtype != 1:
            raise AudioProtocolError(f"unexpected QEMU server message {subtype}")
        if operation in (AUDIO_BEGIN, AUDIO_END):
            continue
        if operation != AUDIO_DATA:
            raise AudioProtocolError(f"unknown audio operation {operation}")
        (size,) = struct.unpack(">I", await _exactly(reader, 4))
        if size > MAX_AUDIO_CHUNK:
            raise AudioProtocolError("audio chunk too large")
        yield await _exactly(reader, size)


async def _pcm_pieces(chunks):
    """Whole stereo frames only (4 bytes each), in pieces the browser can schedule."""
    pending = bytearray()
    async for chunk in chunks:
        pending += chunk
        while len(pending) >= FRAME_BYTES:
            yield bytes(pending[:FRAME_BYTES])
            del pending[:FRAME_BYTES]
        usable = len(pending) - len(pending) % 4
        if usable:
            yield bytes(pending[:usable])
            del pending[:usable]


async def _opus_packets(chunks):
    """One Opus packet per whole 20 ms of PCM; a partial frame waits for the rest of its samples."""
    encoder = opus.Encoder()
    pending = bytearray()
    try:
        async for chunk in chunks:
            pending += chunk
            while len(pending) >= opus.FRAME_BYTES:
                yield encoder.encode(bytes(pending[: opus.FRAME_BYTES]))
                del pending[: opus.FRAME_BYTES]
    finally:
        encoder.close()


class AudioConsumer(EndsWithAccess, AsyncConsumer):
    """One browser's sound channel for the console it has open."""

    grant: sessions.AudioGrant | None = None
    task: asyncio.Task | None = None
    writer: asyncio.StreamWriter | None = None

    async def __call__(self, scope, receive, send) -> None:
        # As the console's own consumer: no channel-layer listener (Channels' default loop keeps one, and a
        # slow Redis read there once ended the sound mid-stream). Closing on lost access is EndsWithAccess's job.
        self.scope = scope
        self.base_send = send
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.connect":
                    await self.websocket_connect(message)
                elif kind == "websocket.receive":
                    await self.websocket_receive(message)
                elif kind == "websocket.disconnect":
                    await self.websocket_disconnect(message)
        except StopConsumer:
            pass
        finally:
            await self._stop()

    async def send(self, message: dict) -> None:
        await self.base_send(message)

    async def websocket_connect(self, message: dict) -> None:
        offered = self.scope.get("subprotocols") or []
        subprotocol = tickets.BINARY_PROTOCOL if tickets.BINARY_PROTOCOL in offered else None
        session = self.scope.get("session")
        try:
            self.grant = await database_sync_to_async(sessions.open_audio)(
                token=tickets.token_from_protocols(offered),
                desktop_id=int(self.scope["url_route"]["kwargs"]["pk"]),
                user=self.scope.get("user"),
                membership=self.scope.get("membership"),
                session_key=session.session_key if session is not None else None,
            )
        except ConsoleError as error:
            await self.send({"type": "websocket.accept", "subprotocol": subprotocol})
            await self.send({"type": "websocket.close", "code": error.close_code})
            return
        await self.send({"type": "websocket.accept", "subprotocol": subprotocol})
        self.task = asyncio.create_task(self._relay())

    async def _relay(self) -> None:
        grant = self.grant
        try:
            host, port = await proxy.vnc_address(grant.host_uri, grant.host_address, grant.domain_name)
            reader, self.writer = await asyncio.wait_for(asyncio.open_connection(host, port), proxy.CONNECT_TIMEOUT_S)
            await asyncio.wait_for(handshake(reader, self.writer), HANDSHAKE_TIMEOUT_S)
            codec = "opus" if self._wants_opus() else "pcm"
            description = {"codec": codec, "rate": SAMPLE_RATE, "channels": CHANNELS}
            await self.send({"type": "websocket.send", "text": json.dumps(description)})
            packets = _opus_packets if codec == "opus" else _pcm_pieces
            async for packet in packets(read_audio(reader)):
                await self.send({"type": "websocket.send", "bytes": packet})
        except (ConsoleUnavailable, ConsoleError) as error:
            await self._close(error.close_code)
        except (TimeoutError, OSError, ConnectionError, AudioProtocolError, opus.OpusError) as error:
            log.info("audio of console session %s ended: %s", grant.session_id, error)
            await self._close(1000)

    def _wants_opus(self) -> bool:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        return query.get("codec") == ["opus"] and opus.available()

    async def _close(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code})

    async def websocket_receive(self, message: dict) -> None:
        return  # the browser only listens; mute is local to the page

    async def websocket_disconnect(self, message: dict) -> None:
        raise StopConsumer

    async def _stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.writer is not None:
            self.writer.close()
            self.writer = None
