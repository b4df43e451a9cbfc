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


def asgi_server_command(host: str, port: int, *, quiet: bool = False) -> list[str]:
    """argv that serves quetzal.asgi on host:port with the interpreter running this code."""
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
    if quiet:
        command += ["--log-level", "warning", "--no-access-log"]
    command.append("quetzal.asgi:application")
    return command


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
