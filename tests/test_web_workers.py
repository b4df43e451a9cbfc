"""How many web processes serve: one per core with Redis, one without, and a clear refusal of bad values."""

from __future__ import annotations

import os

import pytest

from quetzal.server import MAX_WEB_WORKERS, asgi_server_command, web_workers

REDIS = {"REDIS_URL": "redis://127.0.0.1:6379/0"}


def test_it_serves_one_process_per_core_where_redis_lets_them_share():
    assert web_workers(REDIS) == (os.cpu_count() or 1)


def test_it_serves_one_process_without_redis():
    # The in-memory channel layer and cache are per process: a second one would not see the first one's sockets.
    assert web_workers({}) == 1


def test_it_takes_the_operators_number():
    assert web_workers({**REDIS, "WEB_WORKERS": "3"}) == 3
    assert web_workers({"WEB_WORKERS": "1"}) == 1


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5", str(MAX_WEB_WORKERS + 1)])
def test_it_refuses_a_number_it_cannot_serve_with(raw):
    with pytest.raises(SystemExit, match="WEB_WORKERS must be a whole number"):
        web_workers({**REDIS, "WEB_WORKERS": raw})


def test_it_refuses_several_processes_without_redis():
    with pytest.raises(SystemExit, match="needs REDIS_URL"):
        web_workers({"WEB_WORKERS": "2"})


def test_the_server_command_starts_that_many_processes():
    command = asgi_server_command("127.0.0.1", 8000, workers=3)
    assert command[command.index("--workers") + 1] == "3"
    assert "--workers" not in asgi_server_command("127.0.0.1", 8000)
