"""What ASGI does not give us: a fast path to the server's send and a 'browser is backed up' signal."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]

# Bounds the unwrapping walk; real stacks are two or three wrappers deep.
_MAX_DEPTH = 8
# Unsent bytes towards one browser before the pump stops reading VNC.
OUTBOUND_BUFFER = 1024 * 1024
_YIELDS = 4
# Polling steps while the browser's socket is backed up (seconds); short first, capped.
_POLL_MIN_S = 0.0005
_POLL_MAX_S = 0.02


def innermost_send(send: Send) -> Send:
    """The server's own send under Channels' session wrapper, which only acts on HTTP responses."""
    for _ in range(_MAX_DEPTH):
        owner = getattr(send, "__self__", None)
        inner = getattr(owner, "real_send", None)
        if inner is None:
            return send
        send = inner
    return send


def _server_transport(send: Send) -> Any | None:
    """Daphne's Twisted transport for this socket, when the send callable leads to it."""
    send = innermost_send(send)
    if isinstance(send, functools.partial):
        for arg in send.args:
            transport = getattr(arg, "transport", None)
            if transport is not None and hasattr(transport, "producerPaused"):
                return transport
    return None


class OutboundGate:
    """Waits while the server holds more unsent bytes for the browser than its socket buffer allows.

    ASGI's send() returns as soon as the server has queued the frame, so without this a fast VNC
    server would fill the web process's memory when the browser reads slowly. Under daphne the
    socket's Twisted transport pauses its registered producer when its buffer passes `bufferSize`
    and resumes it once drained; `producerPaused` is that documented flag. Servers whose send()
    already waits for the socket (uvicorn with websockets) need no gate, and then this is a no-op.
    """

    def __init__(self, send: Send) -> None:
        self._transport = _server_transport(send)
        if self._transport is not None:
            # Twisted's 64 KiB default would pause after every frame of a screen update; a few
            # frames of slack keep the pump streaming while still bounding memory per console.
            self._transport.bufferSize = max(self._transport.bufferSize, OUTBOUND_BUFFER)

    @property
    def active(self) -> bool:
        return self._transport is not None

    @property
    def blocked(self) -> bool:
        """Whether the browser side is backed up right now (cheap; checked after every frame)."""
        transport = self._transport
        return transport is not None and transport.producerPaused

    async def wait(self) -> None:
        """Return once the browser side can take more (immediately when it already can)."""
        transport = self._transport
        if transport is None or not transport.producerPaused:
            return
        # The reactor usually drains the buffer within a loop iteration or two; yield before sleeping.
        for _ in range(_YIELDS):
            await asyncio.sleep(0)
            if not transport.producerPaused:
                return
        delay = _POLL_MIN_S
        while transport.producerPaused and not getattr(transport, "disconnected", False):
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
