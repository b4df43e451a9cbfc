"""Each client address has a budget of failed API token attempts, shared by the REST API and /mcp/; once spent, its
token requests get 429 `too_many_failed_tokens` with Retry-After before any token is looked up, until the window
ends. Successes never count, and other addresses are served as before.

The REST API through Django's test client (REMOTE_ADDR and X-Forwarded-For as a proxy would send them) and /mcp/
through a live uvicorn serving quetzal.asgi (desktops/tests/test_mcp_http.py's server, in this process, so the
settings below are the server's too), both counting in the real Redis.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx2
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from desktops.tests.test_mcp_http import _error, _post, server_url  # noqa: F401  (fixture)
from tenants.api.throttling import FAILED_PREFIX, failed_tokens
from tenants.models import ApiToken
from tenants.services.tokens import create_token, revoke_token
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT, WINDOW_S = 20, 300
ME, OTHER = "198.51.100.7", "198.51.100.8"
MESSAGE = "Too many attempts without a valid token from your address; try again in %d seconds."


@pytest.fixture
def budget(settings):
    settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S = LIMIT, WINDOW_S
    settings.API_TOKEN_RATE_LIMIT = 1000  # the tokens' own budget is not what these tests spend


def _rest(authorization: str | None, ip: str = ME, **extra):
    if authorization is not None:
        extra["HTTP_AUTHORIZATION"] = authorization
    return APIClient().get("/api/v1/tenant/current/", REMOTE_ADDR=ip, **extra)


def _good(world, name: str = "script") -> str:
    _token, raw = create_token(membership=world.membership(world.member), name=name)
    return raw


def _bad_tokens(world) -> list[str]:
    """A revoked, an expired, a made-up, a foreign-format and a malformed token: each a failed attempt."""
    revoked_row, revoked = create_token(membership=world.membership(world.member), name="old")
    revoke_token(token=revoked_row, actor=world.member)
    expired_row, expired = create_token(
        membership=world.membership(world.member), name="expired", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiToken.objects.filter(pk=expired_row.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    return [f"Bearer {revoked}", f"Bearer {expired}", "Bearer qz_guess", "Bearer nope", "Bearer two words"]


def _fail(times: int, world, ip: str = ME) -> None:
    bad = _bad_tokens(world)
    answers = [_rest(bad[n % len(bad)], ip) for n in range(times)]
    assert [a.status_code for a in answers] == [401] * times, [a.content for a in answers]
    assert {a.json()["code"] for a in answers} == {"invalid_token"}


def test_an_address_out_of_failed_attempts_is_refused_before_its_token_is_looked_up(budget, alice):
    good = _good(alice)
    # Given an address that failed LIMIT token attempts (revoked, expired, made up, malformed)
    _fail(LIMIT, alice)
    assert failed_tokens(ME).used == LIMIT
    # When it sends a good token
    with CaptureQueriesContext(connection) as queries:
        refused = _rest(f"Bearer {good}")
    # Then it is refused with 429, the stable code, a message saying when, and Retry-After within the window
    assert refused.status_code == 429, refused.content
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= WINDOW_S
    assert refused.json() == {
        "code": "too_many_failed_tokens",
        "detail": MESSAGE % retry_after,
    }
    # And no token was looked up
    assert not [q["sql"] for q in queries.captured_queries if "tenants_apitoken" in q["sql"]]
    # Nor is a wrong one counted or answered as wrong any more
    assert _rest("Bearer qz_another_guess").json()["code"] == "too_many_failed_tokens"
    assert failed_tokens(ME).used == LIMIT
    # While the same good token from another address is served, and so is a person at a browser at this one
    assert _rest(f"Bearer {good}", OTHER).status_code == 200
    browser = login_client(alice.member, alice.tenant, client_class=APIClient)
    assert browser.get("/api/v1/tenant/current/", REMOTE_ADDR=ME).status_code == 200


def test_successes_do_not_count(budget, alice):
    good = _good(alice)
    # Given an address one failure short of its budget
    _fail(LIMIT - 1, alice)
    # When it makes many successful requests
    assert [_rest(f"Bearer {good}").status_code for _ in range(LIMIT + 5)] == [200] * (LIMIT + 5)
    # Then one more failure is still answered as such, and only after it is the address refused
    assert _rest("Bearer qz_guess").status_code == 401
    assert _rest(f"Bearer {good}").status_code == 429


def test_the_refusal_speaks_the_callers_language(budget, alice):
    _fail(LIMIT, alice)
    german = _rest("Bearer qz_guess", HTTP_ACCEPT_LANGUAGE="de")
    assert german.status_code == 429 and german.json()["code"] == "too_many_failed_tokens"
    assert german.json()["detail"].startswith("Zu viele Versuche ohne gültiges Token von Ihrer Adresse; ")


def test_the_address_is_served_again_when_the_window_ends(settings, alice):
    settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S = 3, 2
    good = _good(alice)
    time.sleep(2 - time.time() % 2 + 0.05)  # a window's start, so the attempts below fall in one window
    # Given an address refused after its 3 failures
    _fail(3, alice)
    refused = _rest(f"Bearer {good}")
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 2
    # And the count is in Redis, under a key that expires on its own
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    [key] = client.keys(f"*{FAILED_PREFIX}:2:*")
    assert 0 < client.ttl(key) <= 2 + 2
    # When the window ends, its good token is served again
    time.sleep(int(refused["Retry-After"]) + 0.05)
    assert _rest(f"Bearer {good}").status_code == 200


def test_behind_a_proxy_the_forwarded_address_counts_and_a_forged_one_does_not(budget, settings, alice):
    good = _good(alice)
    # Given one trusted proxy, which appends the address it saw to X-Forwarded-For
    settings.TRUSTED_PROXY_COUNT = 1
    bad = _bad_tokens(alice)
    for n in range(LIMIT):
        assert _rest(bad[n % len(bad)], "10.0.0.1", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, {ME}").status_code == 401
    # Then the client the proxy saw is refused, whatever it wrote in front of the header, and others are served
    assert _rest(f"Bearer {good}", "10.0.0.1", HTTP_X_FORWARDED_FOR=f"9.9.9.9, {ME}").status_code == 429
    assert _rest(f"Bearer {good}", "10.0.0.1", HTTP_X_FORWARDED_FOR=OTHER).status_code == 200
    # Given no proxy: a forged header does not move a client to a fresh budget
    settings.TRUSTED_PROXY_COUNT = 0
    for n in range(LIMIT):
        assert _rest("Bearer qz_guess", OTHER, HTTP_X_FORWARDED_FOR=f"5.6.7.{n}").status_code == 401
    assert _rest(f"Bearer {good}", OTHER, HTTP_X_FORWARDED_FOR="5.6.7.200").status_code == 429


def test_an_ipv6_client_has_one_budget_for_its_64(budget, alice):
    good = _good(alice)
    _fail(LIMIT, alice, ip="2001:db8:0:1::1")
    assert _rest(f"Bearer {good}", "2001:db8:0:1::ffff").status_code == 429
    assert _rest(f"Bearer {good}", "2001:db8:0:2::1").status_code == 200


def test_mcp_failures_spend_the_same_budget_and_are_refused_alike(server_url, budget, alice):  # noqa: F811
    good = _good(alice)
    # Given an address that failed at /mcp/: no token, a wrong one, a malformed header
    headers = [{}, {"Authorization": "Bearer qz_guess"}, {"Authorization": "Bearer two words"}]
    answers = [_post(server_url, headers[n % 3]) for n in range(LIMIT - 1)]
    assert [a.status_code for a in answers] == [401] * (LIMIT - 1)
    # And once at the REST API (the live server's clients come from 127.0.0.1 too)
    assert _rest("Bearer qz_guess", "127.0.0.1").status_code == 401
    # When it sends a good token to /mcp/
    refused = _post(server_url, {"Authorization": f"Bearer {good}"})
    # Then it is a 429 JSON-RPC error with the code, when to retry, and Retry-After
    assert refused.status_code == 429, refused.text
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_S
    error = _error(refused)
    assert error["data"] == {"code": "too_many_failed_tokens", "retry_after_s": retry_after}
    assert (
        error["message"]
        == f"Too many attempts without a valid token from your address; try again in {retry_after} seconds."
    )
    # And the REST door refuses the address too
    assert _rest(f"Bearer {good}", "127.0.0.1").json()["code"] == "too_many_failed_tokens"
    # While another address's request with the same token is served
    with httpx2.Client(transport=httpx2.HTTPTransport(local_address="127.0.0.2"), timeout=30) as other:
        served = other.post(
            server_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {good}"},
        )
    assert served.status_code == 200, served.text


def test_concurrent_failures_are_each_counted(server_url, settings, alice):  # noqa: F811
    # Given a budget larger than the attempts, so every one is looked up and answered
    settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S = 1000, 3600
    attempts = 24
    # When many wrong tokens arrive at once from one address
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: _post(server_url, {"Authorization": f"Bearer qz_guess{n}"}), range(attempts)))
    # Then each was refused and each was counted: no increment lost between the server's threads
    assert [a.status_code for a in answers] == [401] * attempts
    assert failed_tokens("127.0.0.1").used == attempts
