"""Failed sign-ins are counted and lock the account out after the configured number."""

from __future__ import annotations

from django.test import Client

from tests.factories import PASSWORD


def test_it_locks_out_after_repeated_failed_logins(alice, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    # Given three wrong passwords
    for _ in range(3):
        response = client.post("/accounts/login/", {"login": alice.member.email, "password": "wrong password"})
    # Then the third is answered with the lockout page, and even the right password is refused
    assert response.status_code == 429
    assert b'data-testid="locked-out"' in response.content
    response = client.post("/accounts/login/", {"login": alice.member.email, "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_it_still_lets_in_below_the_limit(alice, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        client.post("/accounts/login/", {"login": alice.member.email, "password": "wrong password"})
    response = client.post("/accounts/login/", {"login": alice.member.email, "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.member.pk)
