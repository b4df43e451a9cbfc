"""Shared set-up of the benchmarks: a throw-away PostgreSQL database and Django."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def configure(default_database: str) -> None:
    """Point Django at the benchmark's own database (DATABASE_URL overrides)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{default_database}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "quetzal.settings.base"
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def database_name() -> str:
    return urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/")


def _admin_connection():
    """A connection to the server's `postgres` database, for CREATE/DROP DATABASE."""
    import psycopg

    parts = urlsplit(os.environ["DATABASE_URL"])
    url = urlunsplit((parts.scheme.replace("pgsql", "postgresql"), parts.netloc, "/postgres", parts.query, ""))
    return psycopg.connect(url, autocommit=True)


def create_database() -> None:
    """A fresh, migrated database."""
    name = database_name()
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def drop_database() -> None:
    from django.db import connections

    connections.close_all()
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name()}" WITH (FORCE)')


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of a list of numbers."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def serve() -> tuple[subprocess.Popen, int]:
    """The production ASGI server on a free loopback port, once it accepts connections: (process, port)."""
    from quetzal.server import asgi_server_command, free_port, web_workers

    port = free_port()
    server = subprocess.Popen(
        # As many processes as production would run here (WEB_WORKERS, else one per core with Redis).
        asgi_server_command("127.0.0.1", port, quiet=True, workers=web_workers(dict(os.environ))),
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the ASGI server did not start")


def avoid_shared_image_ids() -> None:
    """Start image ids at a random offset: volumes are named after the image's id, and on a libvirtd shared with
    other runs (tests, other checkouts) id 1 collides, whose clean-up would delete this run's base under it."""
    import random

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('hosts_image', 'id'), %s)", [random.randint(10**5, 10**9)])
