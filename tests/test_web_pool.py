"""Several web processes under a burst of requests: every answer right, PostgreSQL connections bounded by the pool."""

from __future__ import annotations

import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from tenants.services.tokens import create_token
from tests.processes import child_env, require_shared_services, start_asgi_server

WORKERS, POOL, REQUESTS, CLIENTS = 2, 3, 60, 30


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _server_connections(database: str, test_pid: int) -> int:
    """Connections to the test database other than this test's own (its thread's and the watcher's)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid NOT IN (pg_backend_pid(), %s)",
            [database, test_pid],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_burst_across_web_processes_stays_within_their_pools(alice, tmp_path):
    require_shared_services("the web server")
    _token, raw = create_token(membership=alice.member.memberships.get(tenant=alice.tenant), name="burst")
    database, test_pid = connection.settings_dict["NAME"], _backend_pid()
    env = child_env(WEB_WORKERS=str(WORKERS), DB_POOL_SIZE=str(POOL), DB_POOL_TIMEOUT_S="30")
    server, base = start_asgi_server(env=env, log_path=tmp_path / "server.log", workers=WORKERS)
    try:

        def fetch(_n: int) -> int:
            request = urllib.request.Request(f"{base}/api/v1/templates/", headers={"Authorization": f"Bearer {raw}"})
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status

        # While CLIENTS at a time ask, the most connections the server's processes ever held at once
        most, done = 0, threading.Event()

        def watch() -> None:
            nonlocal most
            try:
                while not done.is_set():
                    most = max(most, _server_connections(database, test_pid))
            finally:
                connection.close()

        watcher = threading.Thread(target=watch)  # its own connection, closed when it ends
        watcher.start()
        try:
            with ThreadPoolExecutor(CLIENTS) as pool:
                statuses = list(pool.map(fetch, range(REQUESTS)))
        finally:
            done.set()
            watcher.join()
        # Then every request was answered, and no process went past its pool
        assert statuses == [200] * REQUESTS, server.log_tail()
        assert 0 < most <= WORKERS * POOL, (most, server.log_tail())
    finally:
        server.stop()
