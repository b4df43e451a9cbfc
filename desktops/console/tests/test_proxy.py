"""Back-pressure of the byte pump: VNC is not read faster than the browser side takes it."""

from __future__ import annotations

import asyncio
import functools
import os

from desktops.console import proxy
from desktops.console.flow import OUTBOUND_BUFFER, OutboundGate, innermost_send


class _Transport:
    """What the gate reads of a Twisted transport."""

    # Twisted's attribute names.
    bufferSize = 65536
    producerPaused = False
    disconnected = False


class _Protocol:
    def __init__(self) -> None:
        self.transport = _Transport()


class _Server:
    async def handle_reply(self, protocol, message) -> None:
        pass


class _SessionWrapper:
    """Shaped like Channels' session middleware instance, which keeps the real send."""

    def __init__(self, real_send) -> None:
        self.real_send = real_send

    async def send(self, message) -> None:
        await self.real_send(message)


async def test_it_waits_while_daphnes_buffer_towards_the_browser_is_full():
    # Given daphne's send (a partial of its protocol) under Channels' session wrapper
    protocol = _Protocol()
    send = _SessionWrapper(functools.partial(_Server().handle_reply, protocol)).send
    gate = OutboundGate(send)
    assert gate.active and innermost_send(send).args == (protocol,)
    # Then the gate gives the socket some slack before pausing
    assert protocol.transport.bufferSize == OUTBOUND_BUFFER
    # When the transport reports its buffer full, the gate holds the pump until it drains
    protocol.transport.producerPaused = True
    waiter = asyncio.create_task(gate.wait())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    protocol.transport.producerPaused = False
    await asyncio.wait_for(waiter, 1)


async def test_it_is_a_no_op_for_servers_whose_send_already_waits():
    async def send(message) -> None:
        pass

    gate = OutboundGate(send)
    assert not gate.active
    await asyncio.wait_for(gate.wait(), 0.1)


def _kernel_buffers_max() -> int:
    """The most loopback TCP can hold between two sockets (the sender's and the receiver's autotuned buffers)."""
    most = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        with open(f"/proc/sys/net/ipv4/{name}") as values:
            most += int(values.read().split()[2])
    return most


async def test_it_stops_reading_vnc_while_nobody_takes_the_bytes():
    # Given a VNC server with more to send, as fast as it can, than the kernel's buffers and the proxy can hold
    payload = os.urandom(_kernel_buffers_max() + 8 * 1024 * 1024)
    written = asyncio.Event()

    async def flood(reader, writer):
        writer.write(payload)
        await writer.drain()
        written.set()
        writer.close()

    server = await asyncio.start_server(flood, "127.0.0.1", 0)
    vnc = await proxy.connect("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        # When the pump does not take anything for a while
        await asyncio.sleep(0.5)
        # Then the proxy holds about a megabyte and the server is still blocked writing
        assert proxy.READER_LIMIT <= vnc._queued <= proxy.READER_LIMIT + proxy.FRAME_BYTES
        assert not written.is_set()
        # And once the pump reads, everything arrives complete, in order, in frames of at most 64 KiB
        frames = []
        while chunk := await asyncio.wait_for(vnc.read(), 5):
            frames.append(chunk)
        assert b"".join(frames) == payload
        assert max(map(len, frames)) <= proxy.FRAME_BYTES
        assert written.is_set()
    finally:
        await vnc.close()
        server.close()


async def test_it_waits_for_vnc_to_drain_when_it_reads_slowly():
    # Given a VNC server that does not read for a while
    release = asyncio.Event()
    received = bytearray()

    async def slow(reader, writer):
        await release.wait()
        while data := await reader.read(1 << 20):
            received.extend(data)

    server = await asyncio.start_server(slow, "127.0.0.1", 0)
    vnc = await proxy.connect("127.0.0.1", server.sockets[0].getsockname()[1])
    pump = proxy.Pump(vnc, send=None)
    block = os.urandom(256 * 1024)
    try:
        # When the browser pushes far more than the socket buffers hold, upstream() starts waiting
        async def push() -> int:
            sent = 0
            for _ in range(64):
                await pump.upstream(block)
                sent += len(block)
            return sent

        pushing = asyncio.create_task(push())
        await asyncio.sleep(0.5)
        assert not pushing.done()
        # Then it continues as VNC reads, and nothing is lost
        release.set()
        assert await asyncio.wait_for(pushing, 10) == 64 * len(block)
        await vnc.close()
        async with asyncio.timeout(5):
            while len(received) < 64 * len(block):
                await asyncio.sleep(0.01)
        assert bytes(received) == block * 64
    finally:
        server.close()
