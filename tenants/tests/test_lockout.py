"""Failed sign-ins lock out an account from one address, and an account attacked from many; headers cannot reset it."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import PASSWORD

LOGIN = "/accounts/login/"
WRONG = "wrong password"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 5


def _sign_in(email: str, password: str, *, address: str = "198.51.100.1", forwarded: str | None = None):
    """A real POST of allauth's login form from `address` (optionally with an X-Forwarded-For header)."""
    client = Client()
    extra = {"REMOTE_ADDR": address}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    response = client.post(LOGIN, {"login": email, "password": password}, **extra)
    return response, client


def _signed_in(response, client, user) -> bool:
    return response.status_code == 302 and client.session.get("_auth_user_id") == str(user.pk)


def _locked(response) -> bool:
    return response.status_code == 429 and b'data-testid="locked-out"' in response.content


def test_it_locks_out_after_repeated_failed_logins(alice):
    # Given three wrong passwords
    for _ in range(3):
        response, _ = _sign_in(alice.member.email, WRONG)
    # Then the third is answered with the lockout page, and even the right password is refused
    assert _locked(response)
    response, client = _sign_in(alice.member.email, PASSWORD)
    assert _locked(response)
    assert "_auth_user_id" not in client.session


def test_it_still_lets_in_below_the_limit(alice):
    for _ in range(2):
        _sign_in(alice.member.email, WRONG)
    response, client = _sign_in(alice.member.email, PASSWORD)
    assert _signed_in(response, client, alice.member)


def test_it_counts_the_account_as_typed_in_any_case(alice):
    for login in (alice.member.email.upper(), alice.member.email, f" {alice.member.email.title()} "):
        response, _ = _sign_in(login, WRONG)
    assert _locked(response)


def test_it_locks_out_one_account_on_an_address_not_everyone_behind_it(alice):
    # Given a member who mistyped their password three times from the office's address
    for _ in range(3):
        _sign_in(alice.member.email, WRONG, address="198.51.100.7")
    assert _locked(_sign_in(alice.member.email, PASSWORD, address="198.51.100.7")[0])
    # Then a colleague behind the same address still signs in to their own account
    response, client = _sign_in(alice.admin.email, PASSWORD, address="198.51.100.7")
    assert _signed_in(response, client, alice.admin)
    # And the locked-out member can still sign in from home
    response, client = _sign_in(alice.member.email, PASSWORD, address="203.0.113.20")
    assert _signed_in(response, client, alice.member)


def test_it_locks_an_account_attacked_from_many_addresses(alice):
    # Given wrong passwords for one account from five addresses, each below the per-address limit
    for n in range(5):
        response, _ = _sign_in(alice.member.email, WRONG, address=f"203.0.113.{n + 1}")
    assert _locked(response)
    # Then the account is locked from a sixth address too, even with the right password
    assert _locked(_sign_in(alice.member.email, PASSWORD, address="203.0.113.99")[0])
    # And other accounts are not
    response, client = _sign_in(alice.admin.email, PASSWORD, address="203.0.113.1")
    assert _signed_in(response, client, alice.admin)


def test_it_does_not_clear_the_account_count_when_the_person_signs_in_elsewhere(alice):
    # Given four failures spread over addresses, and then the real person signing in from theirs
    for n in range(4):
        _sign_in(alice.member.email, WRONG, address=f"203.0.113.{n + 1}")
    response, client = _sign_in(alice.member.email, PASSWORD, address="192.0.2.50")
    assert _signed_in(response, client, alice.member)
    # Then the spray does not start over: one more failure anywhere locks the account
    assert _locked(_sign_in(alice.member.email, WRONG, address="203.0.113.77")[0])


def test_it_ignores_a_forged_forwarded_header_without_trusted_proxies(alice, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    # Given failures that each claim another address in X-Forwarded-For
    for n in range(3):
        response, _ = _sign_in(alice.member.email, WRONG, forwarded=f"10.9.8.{n}")
    # Then they all count against the one real address, which is locked
    assert _locked(response)
    assert _locked(_sign_in(alice.member.email, PASSWORD, forwarded="10.9.8.200")[0])


def test_it_takes_the_address_our_proxy_saw_not_what_the_client_wrote(alice, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    # Given failures through our proxy, the client writing a new address in front each time
    for n in range(3):
        response, _ = _sign_in(alice.member.email, WRONG, address=proxy, forwarded=f"10.9.8.{n}, 203.0.113.5")
    # Then the address our proxy appended is the one locked, whatever the client writes
    assert _locked(response)
    assert _locked(_sign_in(alice.member.email, PASSWORD, address=proxy, forwarded="1.2.3.4, 203.0.113.5")[0])
    # And the same person from another real address is not locked
    response, client = _sign_in(alice.member.email, PASSWORD, address=proxy, forwarded="203.0.113.6")
    assert _signed_in(response, client, alice.member)
