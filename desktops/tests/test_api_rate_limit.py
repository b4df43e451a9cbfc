"""Each API token has one request budget per window, spent by its REST calls and its MCP requests alike, counted in
Redis. Over it: 429, Retry-After, and when to retry. (Failed attempts spend their address's budget instead:
desktops/tests/test_failed_tokens.py.)

Against a live uvicorn serving quetzal.asgi (desktops/tests/test_mcp_http.py's server, in this process, so the
settings below are the server's too) and the REST API through Django's test client, both counting in the real Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from desktops.services.automation_tokens import create_automation_token
from desktops.tests.test_mcp_http import _error, _post, server_url  # noqa: F401  (fixture)
from tenants.api.throttling import KEY_PREFIX
from tenants.services.tokens import create_token
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT, WINDOW_S = 3, 5
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def budget(settings):
    """A small budget and a short window, so a test can spend it and see it come back."""
    settings.API_TOKEN_RATE_LIMIT, settings.API_RATE_WINDOW_S = LIMIT, WINDOW_S


def _window_start() -> None:
    """Wait for a window to begin, so a test's requests fall in one window, not across two."""
    time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.05)


def _token(world, template, name: str = "agent") -> str:
    _token_row, raw = create_automation_token(
        membership=world.membership(world.member), name=name, access="read", templates=[template]
    )
    return raw


def _full_token(world) -> str:
    """A token for the whole API, the REST calls and /mcp/ alike."""
    _token_row, raw = create_token(membership=world.membership(world.member), name="script")
    return raw


def _mcp(url: str, raw: str | None, **headers: str):
    if raw is not None:
        headers["Authorization"] = f"Bearer {raw}"
    return _post(url, headers)


def _rest(raw: str, **headers):
    return APIClient().get("/api/v1/templates/", HTTP_AUTHORIZATION=f"Bearer {raw}", **headers)


def test_the_request_past_the_limit_is_refused_until_the_window_starts_over(server_url, budget, alice, template):  # noqa: F811
    raw, other = _token(alice, template), _token(alice, template, "another agent")
    _window_start()
    # Given a token that made its LIMIT requests in this window
    assert [_mcp(server_url, raw).status_code for _ in range(LIMIT)] == [200] * LIMIT
    # When it makes one more
    refused = _mcp(server_url, raw)
    # Then it is refused with 429, Retry-After within the window, and a JSON-RPC error saying when to retry
    assert refused.status_code == 429, refused.text
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_S
    error = _error(refused)
    assert error["code"] == -32600 and error["data"] == {"code": "throttled", "retry_after_s": retry_after}
    assert error["message"] == f"Too many requests with this token; try again in {retry_after} seconds."
    # And in the caller's language
    german = _error(_mcp(server_url, raw, **{"Accept-Language": "de"}))
    assert german["message"].startswith("Zu viele Anfragen mit diesem Token; versuchen Sie es in ")
    # While another token of the same person is served as before
    assert _mcp(server_url, other).status_code == 200
    # When the window starts over, the token is served again
    _window_start()
    assert _mcp(server_url, raw).status_code == 200


def test_rest_and_mcp_spend_one_budget(server_url, budget, alice):  # noqa: F811
    raw = _full_token(alice)
    _window_start()
    # Given a token that spent part of its budget on the REST API and the rest at /mcp/
    assert [_rest(raw).status_code for _ in range(LIMIT - 1)] == [200] * (LIMIT - 1)
    assert _mcp(server_url, raw).status_code == 200
    # Then both doors refuse it: the REST API with the stable code `throttled` and Retry-After
    rest = _rest(raw)
    assert rest.status_code == 429 and rest.json()["code"] == "throttled", rest.content
    assert 1 <= int(rest["Retry-After"]) <= WINDOW_S
    assert _mcp(server_url, raw).status_code == 429
    # And the count is in Redis, where every web process reads the same one
    keys = redis.Redis.from_url(django_settings.REDIS_URL).keys(f"*{KEY_PREFIX}:{WINDOW_S}:*:token:*")
    assert keys, "the budget is not counted in Redis"


def test_a_person_at_a_browser_is_not_counted_against_a_token(budget, alice):
    client = login_client(alice.member, alice.tenant, client_class=APIClient)
    _window_start()
    assert [client.get("/api/v1/templates/").status_code for _ in range(LIMIT + 2)] == [200] * (LIMIT + 2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_TOKEN_RATE_LIMIT", "0"),
        ("API_RATE_WINDOW_S", "3601"),
        ("API_TOKEN_FAILURE_LIMIT", "0"),
        ("API_TOKEN_FAILURE_WINDOW_S", "86401"),
    ],
)
def test_a_limit_out_of_bounds_is_refused_at_startup(name, value):
    environment = dict(os.environ, **{name: value})
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and name in result.stderr
