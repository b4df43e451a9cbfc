"""The byte pump between a browser's WebSocket and a desktop's VNC server, with back-pressure both ways."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.utils.translation import gettext

from desktops.console.errors import ConsoleUnavailable, DesktopNotRunning
from desktops.console.flow import OutboundGate, Send
from desktops.console.recordfile import RecordingWriter

log = logging.getLogger(__name__)

# One read from VNC, and one WebSocket frame, carries at most this: under uvicorn the per-frame
# cost (framing, send(), an event-loop turn) dominates, and 256 KiB frames beat 64 KiB ones by ~1.5x.
FRAME_BYTES = 256 * 1024
# Reading VNC pauses once this much waits for the browser side, which bounds memory per console.
READER_LIMIT = 1024 * 1024
# Above this many unsent bytes towards VNC we wait for the socket to drain.
WRITE_HIGH_WATER = 256 * 1024
CONNECT_TIMEOUT_S = 5.0
# RFB client messages that a browser sends on its own, without the person doing anything.
_FRAMEBUFFER_UPDATE_REQUEST = 3
_UPDATE_REQUEST_SIZE = 10


def _vnc_address_sync(host_uri: str, host_address: str, domain_name: str) -> tuple[str, int]:
    """Ask libvirt for the running domain's VNC port; the host's management address wins over its answer."""
    from hosts.hypervisor import DomainNotFound, HostUnavailable, HypervisorError, InvalidDomainState, get_hypervisor

    try:
        address = get_hypervisor(host_uri).console_address(domain_name)
    except (InvalidDomainState, DomainNotFound):
        raise DesktopNotRunning(gettext("The desktop's VM is not running.")) from None
    except HostUnavailable as error:
        raise ConsoleUnavailable(gettext("The desktop's host does not answer: %(error)s") % {"error": error}) from None
    except HypervisorError as error:
        raise ConsoleUnavailable(
            gettext("The desktop's console is not available: %(error)s") % {"error": error}
        ) from None
    return host_address or address.host, address.port


async def vnc_address(host_uri: str, host_address: str, domain_name: str) -> tuple[str, int]:
    """The VNC endpoint, from a worker thread: libvirt calls block and must not hold the event loop."""
    return await sync_to_async(_vnc_address_sync, thread_sensitive=False)(host_uri, host_address, domain_name)


class VncConnection(asyncio.BufferedProtocol):
    """The TCP side of a console: what VNC sends waits in chunks until the pump takes it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        # recv_into one reused buffer: a read takes whatever the socket holds, up to one frame.
        self._buffer = memoryview(bytearray(FRAME_BYTES))
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._closed = False
        self._reading_paused = False
        self._writing_paused = False
        self._reader: asyncio.Future | None = None
        self._drainer: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        # pause_writing() fires past this many unsent bytes; upstream then waits in drain().
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = bytes(self._buffer[:nbytes])
        self._chunks.append(data)
        self._queued += len(data)
        if self._queued >= READER_LIMIT and not self._reading_paused:
            # The browser side is behind: stop reading VNC until the pump catches up.
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._closed = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wake_reader()
        if self._drainer is not None and not self._drainer.done():
            self._drainer.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drainer is not None and not self._drainer.done():
            self._drainer.set_result(None)

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    async def read(self) -> bytes:
        """The next frame's worth (small chunks are joined up to FRAME_BYTES); b"" at the end."""
        chunks = self._chunks
        while not chunks:
            if self._closed:
                return b""
            self._reader = asyncio.get_running_loop().create_future()
            await self._reader
        data = chunks.popleft()
        if chunks and len(data) + len(chunks[0]) <= FRAME_BYTES:
            parts = [data]
            size = len(data)
            while chunks and size + len(chunks[0]) <= FRAME_BYTES:
                part = chunks.popleft()
                parts.append(part)
                size += len(part)
            data = b"".join(parts)
        self._queued -= len(data)
        if self._reading_paused and self._queued < READER_LIMIT // 2 and not self._closed:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> bool:
        """Queue bytes for VNC; True when the caller should drain() before writing more."""
        if self._closed:
            raise ConnectionResetError("VNC connection closed")
        self.transport.write(data)
        return self._writing_paused

    async def drain(self) -> None:
        """Wait while more than WRITE_HIGH_WATER bytes towards VNC are unsent."""
        if self._closed:
            raise ConnectionResetError("VNC connection closed")
        if self._writing_paused:
            self._drainer = asyncio.get_running_loop().create_future()
            await self._drainer

    async def close(self) -> None:
        """Close the connection; what is still buffered goes out first."""
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.close()


async def connect(host: str, port: int) -> VncConnection:
    """Open the TCP connection to VNC, or raise ConsoleUnavailable."""
    loop = asyncio.get_running_loop()
    try:
        _transport, connection = await asyncio.wait_for(
            loop.create_connection(VncConnection, host, port), timeout=CONNECT_TIMEOUT_S
        )
    except (OSError, TimeoutError) as error:
        raise ConsoleUnavailable(gettext("Cannot reach the desktop's console: %(error)s") % {"error": error}) from None
    return connection


def is_input(data: bytes) -> bool:
    """Whether a browser message carries input (keys, pointer, clipboard) rather than screen polling."""
    # noVNC sends each RFB message as its own WebSocket message, so a message made only of
    # FramebufferUpdateRequests is the viewer asking for pixels, not the person doing something.
    if data and data[0] == _FRAMEBUFFER_UPDATE_REQUEST and len(data) % _UPDATE_REQUEST_SIZE == 0:
        return any(data[i] != _FRAMEBUFFER_UPDATE_REQUEST for i in range(0, len(data), _UPDATE_REQUEST_SIZE))
    return bool(data)


@dataclass
class Counters:
    """Bytes each way and the last input, read by heartbeats and the session's end."""

    to_desktop: int = 0
    from_desktop: int = 0
    input_at: float | None = None  # time.time() of the latest input
    reported_input_at: float | None = field(default=None)


class Pump:
    """Moves bytes both ways; never reads VNC faster than the browser side takes them."""

    def __init__(self, vnc: VncConnection, send: Send, *, recorder: RecordingWriter | None = None) -> None:
        self.vnc = vnc
        self.counters = Counters()
        self._send = send
        self._gate = OutboundGate(send)
        self._recorder = recorder

    async def downstream(self) -> None:
        """VNC → browser until VNC closes; what arrived since the last frame becomes one binary frame."""
        read = self.vnc.read
        send = self._send
        counters = self.counters
        recorder = self._recorder
        gate = self._gate
        while data := await read():
            counters.from_desktop += len(data)
            if recorder is not None:
                recorder.append(data)
                if recorder.should_flush:
                    try:
                        await recorder.flush()
                    except OSError:
                        # A full or failing disk ends the recording, never the person's console.
                        log.exception("console recording %s stopped", recorder.path)
                        recorder = self._recorder = None
            await send({"type": "websocket.send", "bytes": data})
            if gate.blocked:
                await gate.wait()

    async def upstream(self, data: bytes) -> None:
        """Browser → VNC; waits for the socket only when too much is queued."""
        counters = self.counters
        counters.to_desktop += len(data)
        if is_input(data):
            counters.input_at = time.time()
        if self.vnc.write(data):
            await self.vnc.drain()

    async def close(self) -> None:
        """Close the VNC connection."""
        await self.vnc.close()
