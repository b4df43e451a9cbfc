"""Console proxy scale: how many 1 Mbit/s console sessions one core serves, Quetzal's server vs websockify.

A local stand-in for VNC streams 1 Mbit/s to each session (a CHUNK-byte chunk every PERIOD, each starting
with its send time, time.monotonic_ns(), which is system-wide on Linux). Clients measure each chunk's delay
(arrival of its header minus its send time). For each step N the same N sessions run three ways: direct to
the stand-in over TCP (the baseline), through Quetzal's production ASGI server, and through websockify;
added p99 = p99 through the proxy minus the direct p99 at that N. N grows until the added p99 passes
LIMIT_MS (or --max); the last N under it is the proxy's capacity.

Cores: the server (ONE worker, WEB_WORKERS=1) and websockify (with every process it forks) are pinned
to core 0; the clients and the stand-in run on the other core(s). So capacity = sessions per server core.
When the client side uses most of its core a warning says the figure is the client's limit, not the proxy's.

Memory: with nothing streaming, --idle sessions are opened through Quetzal's server; the growth of its
resident memory divided by their number is the memory per idle session.

    .venv/bin/python bench/console_scale.py [--max 2000] [--seconds 10] [--idle 500]

Last line: sessions_per_core=<int> websockify_sessions_per_core=<int> kib_per_idle_session=<float>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from console import (
    BIN,
    _tcp_server_main,
    bench_env,
    percentile,
    quetzal_world,
    rss_mb,
    server_command,
    start,
    wait_port,
)

CHUNK = 12_500  # bytes every PERIOD: 125,000 B/s = 1 Mbit/s per session
PERIOD = 0.1
HEADER = struct.Struct(">Q")  # the chunk's send time, time.monotonic_ns()
LIMIT_MS = 10.0
STEPS = (50, 100, 200, 400, 600, 800, 1000, 1300, 1600, 2000)
OPEN_AT_ONCE = 32  # connections being set up at the same time (a page load, not a SYN flood)
WARM_UP_S = 1.0
WARM_UP_SESSIONS = 20
CLIENT_BUSY = 0.9  # share of the client core(s) above which the client, not the proxy, may be the limit

# ------------------------------------------------------------------------------- the VNC stand-in


async def _stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """First byte R: stream CHUNK bytes every PERIOD until the peer goes; no byte at all: an idle console."""
    try:
        if await reader.readexactly(1) != b"R":
            return
        body = bytes(CHUNK - HEADER.size)
        loop = asyncio.get_running_loop()
        due = loop.time() + random.random() * PERIOD  # spread sessions over the period, as real screens are
        gone = asyncio.ensure_future(_until_closed(reader))  # the proxy ended this session
        try:
            while not gone.done():
                await asyncio.sleep(due - loop.time())
                writer.writelines((HEADER.pack(time.monotonic_ns()), body))
                await writer.drain()
                due += PERIOD  # a fixed schedule: a late chunk does not shift the next ones
        finally:
            gone.cancel()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _until_closed(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        await reader.read()


# -------------------------------------------------------------------------------------- client


@dataclass
class Meter:
    """Chunk delays of all sessions, kept only while `on` (after everyone is connected and warmed up)."""

    on: bool = False
    delays_ms: list[float] = field(default_factory=list)
    streaming: int = 0  # sessions that delivered a chunk while on: a refused one would flatter the figures


async def measure(chunks: AsyncIterator[bytes], meter: Meter) -> None:
    """Walk the byte stream by CHUNK (the proxy may split or merge frames), timing each chunk's header."""
    into = 0  # bytes of the current chunk seen so far
    header = b""
    counted = False
    async for data in chunks:
        now = time.monotonic_ns()
        i, size = 0, len(data)
        while i < size:
            if into < HEADER.size:  # the header, possibly split over two reads
                take = min(HEADER.size - into, size - i)
                header += data[i : i + take]
                if len(header) == HEADER.size:
                    if meter.on:
                        meter.delays_ms.append((now - HEADER.unpack(header)[0]) / 1e6)
                        if not counted:
                            meter.streaming += 1
                            counted = True
                    header = b""
            else:
                take = min(CHUNK - into, size - i)
            i += take
            into = (into + take) % CHUNK


async def ws_chunks(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[bytes]:
    while (message := await ws.receive()).type == aiohttp.WSMsgType.BINARY:
        yield message.data


async def tcp_chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while data := await reader.read(65536):
        yield data


@dataclass
class Stream:
    """An open session: its bytes from the stand-in, and how to end it."""

    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]


@dataclass
class Route:
    """One way to reach the stand-in: `open` connects and sends `first` (b"R" streams, b"" idles)."""

    name: str
    open: Callable[[bytes], Awaitable[Stream]]
    # Called with how many sockets are about to open: Quetzal's server wants one fresh ticket per socket.
    prepare: Callable[[int], None] = lambda count: None
    capacity: int = 0
    done: bool = False


async def open_many(route: Route, count: int, first: bytes) -> list[Stream]:
    """`count` sessions, OPEN_AT_ONCE being set up at a time; tickets issued per batch (they live 60 s)."""
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def open_one() -> Stream:
        async with gate:
            return await route.open(first)

    streams: list[Stream] = []
    for begin in range(0, count, 200):
        batch = min(200, count - begin)
        await asyncio.to_thread(route.prepare, batch)  # Django's ORM is not for the event loop
        streams += await asyncio.gather(*(open_one() for _ in range(batch)))
    return streams


async def close_all(streams: list[Stream]) -> None:
    await asyncio.wait_for(asyncio.gather(*(s.close() for s in streams), return_exceptions=True), 60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    p50: float
    p99: float
    client_cpu: float  # share of the client core(s), clients and stand-in together


async def run_step(route: Route, count: int, seconds: float, stand_in_pid: int, client_cores: int) -> Step:
    """Open `count` streaming sessions, measure their chunk delays for `seconds`, close them."""
    meter = Meter()
    streams = await open_many(route, count, b"R")
    tasks = [asyncio.create_task(measure(stream.chunks, meter)) for stream in streams]
    await asyncio.sleep(WARM_UP_S)  # measure only once all N are connected and streaming
    cpu_before = time.process_time() + cpu_seconds(stand_in_pid)
    started = time.monotonic()
    meter.on = True
    await asyncio.sleep(seconds)
    meter.on = False
    busy = (time.process_time() + cpu_seconds(stand_in_pid) - cpu_before) / (time.monotonic() - started)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await close_all(streams)
    if not meter.delays_ms:
        raise SystemExit(f"{route.name}: no chunk arrived from {count} sessions")
    if meter.streaming < count:
        print(f"warning: {route.name} N={count}: only {meter.streaming} sessions streamed", flush=True)
    return Step(percentile(meter.delays_ms, 50), percentile(meter.delays_ms, 99), busy / client_cores)


# ---------------------------------------------------------------------------------------- main


def pin(pid: int, cores: set[int]) -> None:
    if cores:
        os.sched_setaffinity(pid, cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=STEPS[-1], help=f"largest step (default {STEPS[-1]})")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per step (default 10)")
    parser.add_argument("--idle", type=int, default=500, help="idle sessions for the memory figure (default 500)")
    args = parser.parse_args()
    steps = [n for n in STEPS if n < args.max] + [args.max]

    # Core 0 serves; this process (the clients) and the stand-in it starts use the others.
    cores = sorted(os.sched_getaffinity(0))
    server_cores, client_cores = ({cores[0]}, set(cores[1:])) if len(cores) > 1 else (set(), set())
    if not server_cores:
        print("warning: one core only; server and clients share it, so the figures are not per server core")
    pin(0, client_cores)

    workdir = Path(tempfile.mkdtemp(prefix="quetzal-bench-console-scale-"))
    # One web process: the figure is per core. Long ticket lives: a batch's tickets are issued before it connects.
    env = bench_env(workdir, WEB_WORKERS="1", CONSOLE_TICKET_TTL_S="60")
    from quetzal.server import free_port

    vnc_port, server_port, websockify_port = free_port(), free_port(), free_port()
    stand_in = multiprocessing.Process(target=_tcp_server_main, args=(vnc_port, _stream), daemon=True)
    stand_in.start()
    assert stand_in.pid is not None
    # Fair share off (0: no limit): 3 consoles per person by default would refuse all but the first few sessions.
    world = quetzal_world(workdir, vnc_port, max_consoles_per_person=0, max_consoles_per_tenant=0)
    server = start(server_command(server_port), env, workdir / "server.log")
    websockify = start(
        [str(BIN / "websockify"), f"127.0.0.1:{websockify_port}", f"127.0.0.1:{vnc_port}"],
        env,
        workdir / "websockify.log",
    )
    for process in (server, websockify):
        pin(process.pid, server_cores)  # before any connection: websockify's forks inherit it
    try:
        for port in (vnc_port, server_port, websockify_port):
            wait_port(port)
        sessions, websockify_sessions, kib = asyncio.run(
            measure_all(world, steps, args, (server.pid, stand_in.pid), (vnc_port, server_port, websockify_port))
        )
    finally:
        for process in (server, websockify):
            process.terminate()
            process.wait(30)
        stand_in.terminate()
        shutil.rmtree(workdir, ignore_errors=True)
    figures = f"sessions_per_core={sessions} websockify_sessions_per_core={websockify_sessions}"
    print(f"{figures} kib_per_idle_session={kib:.1f}")


async def measure_all(world, steps: list[int], args, pids: tuple[int, int], ports) -> tuple[int, int, float]:
    """Idle memory first (before streaming grows the heap), then the steps: direct, Quetzal, websockify."""
    server_pid, stand_in_pid = pids
    vnc_port, server_port, websockify_port = ports
    client_cores = len(os.sched_getaffinity(0))
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # the default caps at 100 sockets
    tickets: list[str] = []

    async def direct(first: bytes) -> Stream:
        reader, writer = await asyncio.open_connection("127.0.0.1", vnc_port)
        writer.write(first)

        async def close() -> None:
            writer.close()

        return Stream(tcp_chunks(reader), close)

    async def websocket(url: str, first: bytes, **options) -> Stream:
        ws = await http.ws_connect(url, max_msg_size=0, **options)
        if first:
            await ws.send_bytes(first)
        return Stream(ws_chunks(ws), ws.close)

    async def through_websockify(first: bytes) -> Stream:
        return await websocket(f"ws://127.0.0.1:{websockify_port}/", first, protocols=("binary",))

    async def through_quetzal(first: bytes) -> Stream:
        return await websocket(
            f"ws://127.0.0.1:{server_port}/ws/desktops/{world.desktop_id}/console/",
            first,
            protocols=("binary", f"quetzal.ticket.{tickets.pop()}"),
            headers={"Origin": f"http://127.0.0.1:{server_port}", "Cookie": f"sessionid={world.session_key}"},
        )

    def issue(count: int) -> None:
        tickets.extend(world.ticket() for _ in range(count))

    quetzal = Route("quetzal", through_quetzal, issue)
    contenders = [quetzal, Route("websockify", through_websockify)]
    try:
        kib = await idle_memory(quetzal, args.idle, server_pid)
        for count in steps:
            racing = [route for route in contenders if not route.done]
            if not racing:
                break
            baseline = await run_step(Route("direct", direct), count, args.seconds, stand_in_pid, client_cores)
            warn_if_busy("direct", count, baseline)
            for route in racing:
                await asyncio.sleep(2)  # let the server finish ending the previous step's sessions
                step = await run_step(route, count, args.seconds, stand_in_pid, client_cores)
                added = step.p99 - baseline.p99
                print(
                    f"{route.name:<10} N={count:<5} p50_ms={step.p50:.2f} p99_ms={step.p99:.2f}"
                    f" direct_p99_ms={baseline.p99:.2f} added_p99_ms={added:.2f} client_cpu={step.client_cpu:.0%}",
                    flush=True,
                )
                warn_if_busy(route.name, count, step)
                if added > LIMIT_MS:
                    route.done = True
                else:
                    route.capacity = count
    finally:
        await http.close()
    return contenders[0].capacity, contenders[1].capacity, kib


def warn_if_busy(name: str, count: int, step: Step) -> None:
    if step.client_cpu > CLIENT_BUSY:
        print(
            f"warning: {name} N={count}: clients and stand-in used {step.client_cpu:.0%} of their core(s);"
            " the client side may be the bottleneck",
            flush=True,
        )


async def idle_memory(route: Route, count: int, server_pid: int) -> float:
    """KiB of the server's resident memory per open console that carries nothing."""
    if count <= 0:
        return 0.0
    # One-time costs (imports on first use, the ORM's thread and connection) are not per session: pay them first.
    await close_all(await open_many(route, WARM_UP_SESSIONS, b""))
    await asyncio.sleep(1)
    before = rss_mb(server_pid)
    streams = await open_many(route, count, b"")
    await asyncio.sleep(2)  # let the server settle (session rows written, buffers allocated)
    grown = rss_mb(server_pid) - before
    await close_all(streams)
    print(f"idle       M={count} server_rss_before_mb={before:.1f} grown_mb={grown:.1f}", flush=True)
    return grown * 1024 / count


if __name__ == "__main__":
    main()
