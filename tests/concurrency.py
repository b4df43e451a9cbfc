"""Run calls at the same moment from many threads, each on its own database connection, for race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, connections
from rest_framework.test import APIClient

from tests.services import require


def require_postgresql() -> None:
    """Races are decided by PostgreSQL's row locks; SQLite runs one writer at a time and proves nothing."""
    require(connection.vendor == "postgresql", "PostgreSQL (row locks)")


def at_once(calls: Sequence[Callable[[], Any]], *, timeout_s: float = 120) -> list[Any]:
    """Start every call behind one barrier; return their results in order (an exception is returned, not raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except BaseException as error:  # reported to the test as a result, so one failure names itself
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
    assert not any(thread.is_alive() for thread in threads), "a call hung (deadlock?)"
    return results


def post(client: APIClient, path: str, body: dict | None = None) -> Callable[[], tuple[int, dict]]:
    """A call for `at_once`: POST a JSON body, answer (status, JSON body)."""

    def call() -> tuple[int, dict]:
        response = client.post(path, body or {}, format="json")
        return response.status_code, response.json()

    return call
