"""The production ASGI server's command line and a free port for it, shared by `make run`, the benchmarks and tests."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

# uvicorn with the `websockets` library: its send() waits while the socket towards the browser is
# backed up (real back-pressure for the console proxy), and frames go out without Twisted's deferred
# writes and copies, which made daphne's console downstream slower than websockify's.
WS_IMPLEMENTATION = os.environ.get("QUETZAL_WS", "websockets-sansio")


def web_workers(environ: dict[str, str]) -> int:
    """How many web processes to serve with: WEB_WORKERS, else one per core.

    Several processes need Redis: the channel layer carries console and live events between them, and the cache
    holds sign-in lockouts and rate limits for all of them. Without REDIS_URL each process would keep its own.
    """
    raw = environ.get("WEB_WORKERS", "").strip()
    has_redis = bool(environ.get("REDIS_URL"))
    if not raw:
        return (os.cpu_count() or 1) if has_redis else 1
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_WEB_WORKERS:
        raise SystemExit(f"WEB_WORKERS must be a whole number from 1 to {MAX_WEB_WORKERS}, got {raw!r}")
    if int(raw) > 1 and not has_redis:
        raise SystemExit("WEB_WORKERS above 1 needs REDIS_URL: processes share events, lockouts and limits there")
    return int(raw)


MAX_WEB_WORKERS = 64


def asgi_server_command(host: str, port: int, *, quiet: bool = False, workers: int = 1) -> list[str]:
    """argv that serves quetzal.asgi on host:port with the interpreter running this code, in `workers` processes."""
    command = [
        str(Path(sys.executable)),
        "-m",
        "uvicorn",
        "--host",
        host,
        "--port",
        str(port),
        "--ws",
        WS_IMPLEMENTATION,
        # VNC frames are mostly compressed already; deflating them again costs CPU on both ends
        # (daphne never negotiated it either).
        "--ws-per-message-deflate",
        "false",
        # uvicorn would otherwise take the client address from X-Forwarded-For of any local caller;
        # Quetzal reads that header itself, and only with TRUSTED_PROXY_COUNT set (tenants/addresses.py).
        "--no-proxy-headers",
        # Django needs no ASGI lifespan events; "auto" would only log that it is unsupported.
        "--lifespan",
        "off",
    ]
    if workers > 1:
        command += ["--workers", str(workers)]
    if quiet:
        command += ["--log-level", "warning", "--no-access-log"]
    command.append("quetzal.asgi:application")
    return command


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
