"""Console proxy benchmark: Quetzal's proxy under its production ASGI server vs websockify, one client.

Both proxies forward to one local TCP server standing in for VNC. One WebSocket client (aiohttp)
pushes bytes up (browser → VNC), pulls bytes down (VNC → browser) and times small echoes; a raw TCP
client times the same echoes directly, which is the baseline for the added round trip.

    .venv/bin/python bench/console.py [--mb 128] [--rounds 3] [--echoes 2000]

It also checks back-pressure: a client that reads nothing of 2x the payload must not make
the server's memory grow by more than a few megabytes.

Last line: throughput_ratio_vs_websockify=<min over both directions> added_rtt_p99_ms=<p99 - direct p99>
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHUNK = 64 * 1024
ECHO_SIZE = 64
ECHO_BURST = 100

# ------------------------------------------------------------------------------- the VNC stand-in


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """First byte picks the mode: E echo, S sink n bytes then answer K, D send n bytes."""
    try:
        mode = await reader.readexactly(1)
        if mode == b"E":
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        elif mode == b"S":
            (remaining,) = struct.unpack(">Q", await reader.readexactly(8))
            while remaining > 0:
                data = await reader.read(min(1 << 20, remaining))
                if not data:
                    return
                remaining -= len(data)
            writer.write(b"K")
            await writer.drain()
            await reader.read()
        elif mode == b"D":
            (remaining,) = struct.unpack(">Q", await reader.readexactly(8))
            block = os.urandom(CHUNK)
            while remaining > 0:
                writer.write(block[: min(CHUNK, remaining)])
                remaining -= min(CHUNK, remaining)
                await writer.drain()
            await reader.read()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _tcp_server_main(
    port: int, serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] = _serve
) -> None:
    """The stand-in's process: `serve` answers each connection (bench/console_scale.py brings its own)."""

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# ------------------------------------------------------------------------------------- Quetzal


@dataclass
class QuetzalWorld:
    """A user with a browser session and a running desktop whose VNC is the stand-in server."""

    session_key: str
    desktop_id: int
    ticket: Callable[[], str]


NODE_XML = """<node>
  <domain type="test">
    <name>{name}</name>
    <uuid>{uuid}</uuid>
    <memory>262144</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <devices><graphics type="vnc" port="{port}" autoport="no" listen="127.0.0.1"/></devices>
  </domain>
</node>
"""


def quetzal_world(workdir: Path, vnc_port: int, **tenant_settings: object) -> QuetzalWorld:
    """A fresh SQLite database with a tenant, a member, a host (libvirt test driver) and a running desktop.

    tenant_settings are the tenant's fields, e.g. max_consoles_per_person=0 for as many consoles as a bench opens.
    """
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from desktops.console import tickets
    from desktops.models import Desktop, DesktopTemplate
    from hosts.models import Host, Image
    from tenants.models import Membership, Tenant, User
    from tenants.resolution import SESSION_KEY as TENANT_KEY

    call_command("migrate", verbosity=0)
    tenant = Tenant.objects.create(name="Bench", slug="bench", **tenant_settings)
    user = User.objects.create_user(email="bench@example.test", password=uuid.uuid4().hex)
    membership = Membership.objects.create(user=user, tenant=tenant, role="member")
    image = Image.objects.create(name="bench", source_path="/dev/null", sha256="0" * 64)
    template = DesktopTemplate.objects.create(name="Bench", image=image, vcpus=1, memory_mib=256)
    node = workdir / "node.xml"
    host = Host.objects.create(name="bench", uri=f"test://{node}", console_address="127.0.0.1", state="up")
    desktop = Desktop.objects.create(
        tenant=tenant, user=user, template=template, name="bench", vcpus=1, memory_mib=256, host=host, state="running"
    )
    # libvirt's test driver reads its domains from this file in every process, the server's included.
    node.write_text(NODE_XML.format(name=desktop.domain_name, uuid=desktop.domain_uuid, port=vnc_port))
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "tenants.sso.backends.PasswordBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session[TENANT_KEY] = tenant.pk
    session.create()

    def ticket() -> str:
        return tickets.issue(desktop=desktop, user=user, membership=membership, session_key=session.session_key).token

    return QuetzalWorld(session_key=session.session_key, desktop_id=desktop.pk, ticket=ticket)


# -------------------------------------------------------------------------------------- client

Connect = Callable[[aiohttp.ClientSession], Awaitable[aiohttp.ClientWebSocketResponse]]


async def _receive_bytes(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    message = await ws.receive()
    if message.type != aiohttp.WSMsgType.BINARY:
        raise RuntimeError(f"unexpected message {message.type}: {message.data!r}")
    return message.data


async def upload(connect: Connect, total: int) -> float:
    """MB/s from the client through the proxy into the TCP sink."""
    async with aiohttp.ClientSession() as http:
        ws = await connect(http)
        await ws.send_bytes(b"S" + struct.pack(">Q", total))
        block = os.urandom(CHUNK)
        started = time.perf_counter()
        sent = 0
        while sent < total:
            size = min(CHUNK, total - sent)
            await ws.send_bytes(block if size == CHUNK else block[:size])
            sent += size
        assert await _receive_bytes(ws) == b"K"
        elapsed = time.perf_counter() - started
        await ws.close()
    return total / elapsed / 1e6


async def download(connect: Connect, total: int) -> float:
    """MB/s from the TCP source through the proxy to the client."""
    async with aiohttp.ClientSession() as http:
        ws = await connect(http)
        started = time.perf_counter()
        await ws.send_bytes(b"D" + struct.pack(">Q", total))
        received = 0
        while received < total:
            received += len(await _receive_bytes(ws))
        elapsed = time.perf_counter() - started
        await ws.close()
    return total / elapsed / 1e6


class Echo:
    """A connection to the echo server, through a proxy or direct, timing small round trips."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], receive: Callable[[], Awaitable[bytes]]) -> None:
        self._send = send
        self._receive = receive
        self.samples: list[float] = []

    async def burst(self, count: int, *, keep: bool = True) -> None:
        message = b"k" * ECHO_SIZE
        for _ in range(count):
            started = time.perf_counter()
            await self._send(message)
            got = 0
            while got < ECHO_SIZE:
                got += len(await self._receive())
            if keep:
                self.samples.append((time.perf_counter() - started) * 1000)


async def ws_echo(http: aiohttp.ClientSession, connect: Connect) -> Echo:
    ws = await connect(http)
    await ws.send_bytes(b"E")
    return Echo(ws.send_bytes, lambda: _receive_bytes(ws))


async def tcp_echo(port: int) -> Echo:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"E")

    async def send(data: bytes) -> None:
        writer.write(data)

    return Echo(send, lambda: reader.read(65536))


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


async def stalled_reader_growth(connect: Connect, pid: int, total: int) -> float:
    """How much the proxy process grows while its client reads nothing of `total` bytes: back-pressure."""
    async with aiohttp.ClientSession() as http:
        ws = await connect(http)
        before = rss_mb(pid)
        await ws.send_bytes(b"D" + struct.pack(">Q", total))
        await asyncio.sleep(3)
        grown = rss_mb(pid) - before
        received = 0
        while received < total:
            received += len(await _receive_bytes(ws))
        await ws.close()
    return grown


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Figures:
    up: float
    down: float
    p50: float
    p99: float

    def line(self, name: str) -> str:
        throughput = f"up_MBps={self.up:.1f} down_MBps={self.down:.1f}"
        return f"{name:<10} {throughput} rtt_p50_ms={self.p50:.3f} rtt_p99_ms={self.p99:.3f}"


@dataclass
class Samples:
    """Throughput runs each way of one proxy."""

    ups: list[float] = field(default_factory=list)
    downs: list[float] = field(default_factory=list)

    async def run(self, connect: Connect, *, total: int) -> None:
        self.ups.append(await upload(connect, total))
        self.downs.append(await download(connect, total))

    def figures(self, rtts: list[float]) -> Figures:
        """Median throughput of the runs, RTT percentiles over all echoes."""
        return Figures(
            statistics.median(self.ups), statistics.median(self.downs), percentile(rtts, 50), percentile(rtts, 99)
        )


# ---------------------------------------------------------------------------------------- main


def server_command(port: int) -> list[str]:
    """Quetzal's production ASGI server (QUETZAL_BENCH_SERVER=daphne measures daphne instead)."""
    if os.environ.get("QUETZAL_BENCH_SERVER") == "daphne":
        return [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "-v", "0", "quetzal.asgi:application"]
    from quetzal.server import asgi_server_command

    return asgi_server_command("127.0.0.1", port, quiet=True)


def bench_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The servers' environment (SQLite in workdir, no Redis), adopted by this process too, which makes the world."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="quetzal.settings.base",
        DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
        QUETZAL_VAR_DIR=str(workdir),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    env.pop("REDIS_URL", None)  # the proxy needs no channel layer; keep the run self-contained
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    return env


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=128, help="MiB per throughput run (default 128)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure; the median is kept (default 3)")
    parser.add_argument("--echoes", type=int, default=2000, help="small round trips per round (default 2000)")
    args = parser.parse_args()
    total = args.mb * 1024 * 1024

    workdir = Path(tempfile.mkdtemp(prefix="quetzal-bench-console-"))
    env = bench_env(workdir)
    from quetzal.server import free_port

    vnc_port, server_port, websockify_port = free_port(), free_port(), free_port()
    server = multiprocessing.Process(target=_tcp_server_main, args=(vnc_port,), daemon=True)
    server.start()
    world = quetzal_world(workdir, vnc_port)
    processes = [
        start(server_command(server_port), env, workdir / "server.log"),
        start(
            [str(BIN / "websockify"), f"127.0.0.1:{websockify_port}", f"127.0.0.1:{vnc_port}"],
            env,
            workdir / "websockify.log",
        ),
    ]
    try:
        for port in (vnc_port, server_port, websockify_port):
            wait_port(port)

        async def quetzal(http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
            origin = f"http://127.0.0.1:{server_port}"
            ticket = await asyncio.to_thread(world.ticket)  # a fresh one-time ticket per socket, as the page does
            return await http.ws_connect(
                f"ws://127.0.0.1:{server_port}/ws/desktops/{world.desktop_id}/console/",
                protocols=("binary", f"quetzal.ticket.{ticket}"),
                headers={"Origin": origin, "Cookie": f"sessionid={world.session_key}"},
                max_msg_size=0,
                autoping=False,
            )

        async def websockify(http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
            return await http.ws_connect(
                f"ws://127.0.0.1:{websockify_port}/", protocols=("binary",), max_msg_size=0, autoping=False
            )

        async def run() -> tuple[list[float], Figures, Figures, float]:
            # Contenders take turns (who goes first alternates), in short bursts for the round
            # trips, so that load from elsewhere on the machine hits all of them alike.
            contenders = [Samples(), Samples()]
            connects = [websockify, quetzal]
            for round_ in range(args.rounds):
                for i in (0, 1) if round_ % 2 == 0 else (1, 0):
                    await contenders[i].run(connects[i], total=total)
            async with aiohttp.ClientSession() as http:
                echoes = [await tcp_echo(vnc_port), await ws_echo(http, websockify), await ws_echo(http, quetzal)]
                for echo in echoes:
                    await echo.burst(ECHO_BURST, keep=False)  # warm up
                for _ in range(max(1, args.echoes * args.rounds // ECHO_BURST)):
                    for echo in echoes:
                        await echo.burst(ECHO_BURST)
            stalled = await stalled_reader_growth(quetzal, processes[0].pid, total * 2)
            direct, ws_rtts, qz_rtts = (echo.samples for echo in echoes)
            return direct, contenders[0].figures(ws_rtts), contenders[1].figures(qz_rtts), stalled

        direct, ws_figures, qz_figures, stalled = asyncio.run(run())
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        server.terminate()
    direct_p50, direct_p99 = percentile(direct, 50), percentile(direct, 99)
    echoes = max(1, args.echoes * args.rounds // ECHO_BURST) * ECHO_BURST
    print(f"payload={args.mb} MiB each way x {args.rounds} rounds; {echoes} echoes of {ECHO_SIZE} B each")
    print(f"{'direct':<10} rtt_p50_ms={direct_p50:.3f} rtt_p99_ms={direct_p99:.3f}")
    print(ws_figures.line("websockify"))
    print(qz_figures.line("quetzal"))
    up_ratio, down_ratio = qz_figures.up / ws_figures.up, qz_figures.down / ws_figures.down
    rtt_ratio = qz_figures.p99 / ws_figures.p99
    print(f"{'ratio':<10} up={up_ratio:.2f} down={down_ratio:.2f} rtt_p99_vs_websockify={rtt_ratio:.2f}")
    print(f"{'added':<10} rtt_p50_ms={qz_figures.p50 - direct_p50:.3f} rtt_p99_ms={qz_figures.p99 - direct_p99:.3f}")
    print(f"{'stalled':<10} quetzal_rss_growth_mb={stalled:.0f} while a client read nothing of {2 * args.mb} MiB")
    shutil.rmtree(workdir, ignore_errors=True)
    added_p99 = qz_figures.p99 - direct_p99
    print(f"throughput_ratio_vs_websockify={min(up_ratio, down_ratio):.2f} added_rtt_p99_ms={added_p99:.3f}")


if __name__ == "__main__":
    main()
