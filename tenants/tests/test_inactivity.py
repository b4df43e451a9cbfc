"""A portal session idle longer than the tenant's inactivity limit is signed out."""

from __future__ import annotations

import time

from tenants.middleware import LAST_SEEN_KEY
from tests.fixtures import login_client


def _age_session(client, seconds: float) -> None:
    session = client.session
    session[LAST_SEEN_KEY] = time.time() - seconds
    session.save()


def test_it_signs_out_an_idle_session(alice):
    alice.tenant.inactivity_logout_minutes = 15
    alice.tenant.save()
    client = login_client(alice.member, alice.tenant)
    assert client.get("/").status_code == 200
    _age_session(client, 16 * 60)
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session


def test_it_keeps_an_active_session(alice):
    alice.tenant.inactivity_logout_minutes = 15
    alice.tenant.save()
    client = login_client(alice.member, alice.tenant)
    client.get("/")
    _age_session(client, 14 * 60)
    assert client.get("/").status_code == 200


def test_it_answers_the_api_with_json_when_signed_out(alice):
    alice.tenant.inactivity_logout_minutes = 5
    alice.tenant.save()
    client = login_client(alice.member, alice.tenant)
    client.get("/")
    _age_session(client, 6 * 60)
    response = client.get("/api/v1/tenant/current/")
    assert response.status_code == 401 and response.json()["code"] == "session_expired"


def test_it_does_nothing_without_a_limit(alice):
    client = login_client(alice.member, alice.tenant)
    client.get("/")
    _age_session(client, 24 * 3600)
    assert client.get("/").status_code == 200
