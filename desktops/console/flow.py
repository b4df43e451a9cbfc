"""What ASGI does not give us: a fast path to the server's send and a 'browser is backed up' signal."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]

# Bounds the unwrapping walk; real stacks are two or three wrappers deep.
_MAX_DEPTH = 8
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
    socket's Twisted transport pauses its registered producer when its buffer passes 64 KiB and
    resumes it once drained; `producerPaused` is that documented flag. Servers whose send() already
    waits for the socket (uvicorn with websockets) need no gate, and then this is a no-op.
    """

    def __init__(self, send: Send) -> None:
        self._transport = _server_transport(send)

    @property
    def active(self) -> bool:
        return self._transport is not None

    async def wait(self) -> None:
        """Return once the browser side can take more (immediately when it already can)."""
        transport = self._transport
        if transport is None or not transport.producerPaused:
            return
        delay = _POLL_MIN_S
        while transport.producerPaused and not getattr(transport, "disconnected", False):
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
