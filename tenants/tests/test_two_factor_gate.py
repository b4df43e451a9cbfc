"""A session that passed the password but not the code reaches only the code page and sign-out: every route is checked.

The routes come from the URL configuration, so a page added later is covered without anyone listing it.
"""

from __future__ import annotations

import base64
import time

import pyotp
import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.middleware import PENDING_ALLOWED
from tenants.tests.routes import all_routes
from tests.factories import PASSWORD, UserFactory
from tests.fixtures import login_client

VERIFY = "/accounts/2fa/verify/"


def _device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def _half_signed_in(user) -> Client:
    """Signed in with the real login form (password only), the code not yet entered."""
    client = Client()
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def _refused(route, response) -> bool:
    if route.is_api:
        return response.status_code == 401 and response.json()["code"] == "otp_required"
    return response.status_code == 302 and response["Location"].startswith(VERIFY)


def test_it_holds_every_route_but_the_code_page_and_sign_out(alice):
    # Given an owner who is also an operator, with an authenticator, signed in with the password only
    owner = alice.owner
    owner.is_staff = owner.is_superuser = True
    owner.save()
    _device(owner)
    client = _half_signed_in(owner)
    # When they try every route of the site, reading and writing
    leaks = []
    for route in all_routes():
        if route.name in PENDING_ALLOWED:
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(route.url)
            if not _refused(route, response):
                leaks.append(f"{method.upper()} {route.url} ({route.name}) -> {response.status_code}")
    # Then each one sends them to the code page (or the API refuses)
    assert not leaks, "\n".join(leaks)
    # And the code page and sign-out work
    assert client.get(VERIFY).status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_it_keeps_a_half_signed_in_session_from_the_password_and_email_pages(alice):
    _device(alice.member)
    client = _half_signed_in(alice.member)
    before = alice.member.password
    changed = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": "a new long passphrase", "password2": "a new long passphrase"},
    )
    added = client.post("/accounts/email/", {"action_add": "", "email": "attacker@example.test"})
    assert changed["Location"].startswith(VERIFY) and added["Location"].startswith(VERIFY)
    alice.member.refresh_from_db()
    assert alice.member.password == before
    assert not alice.member.emailaddress_set.filter(email="attacker@example.test").exists()


def test_it_sends_back_to_the_page_asked_for_after_the_code(alice):
    device = _device(alice.member)
    client = _half_signed_in(alice.member)
    response = client.get("/settings/tokens/?tab=1")
    assert response["Location"] == f"{VERIFY}?next=%2Fsettings%2Ftokens%2F%3Ftab%3D1"
    code = pyotp.TOTP(base64.b32encode(device.bin_key).decode()).at(time.time())
    verified = client.post(VERIFY, {"code": code, "next": "/settings/tokens/?tab=1"})
    assert verified.status_code == 302 and verified["Location"] == "/settings/tokens/?tab=1"
    assert client.get("/settings/tokens/").status_code == 200


# --- operators -----------------------------------------------------------------------------------


@pytest.fixture
def operator(db):
    return UserFactory(email="operator@example.test", is_staff=True, is_superuser=True)


def test_it_sends_operators_to_enrol_before_the_admin_when_required(operator, settings):
    settings.ADMIN_REQUIRE_2FA = True
    client = login_client(operator)
    for path in ("/admin/", "/admin/tenants/tenant/", "/admin/hosts/host/dashboard/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == "/accounts/2fa/setup/", path
    # Pages outside the admin stay open to them
    assert client.get("/settings/security/").status_code == 200
    # When they enrol an authenticator, the admin opens
    client.get("/accounts/2fa/setup/")
    device = TOTPDevice.objects.get(pk=client.session["quetzal_totp_setup_device"])
    code = pyotp.TOTP(base64.b32encode(device.bin_key).decode()).now()
    assert client.post("/accounts/2fa/setup/?keep=1", {"code": code}).status_code == 200
    assert client.get("/admin/").status_code == 200


def test_it_asks_an_enrolled_operator_for_the_code_before_the_admin(operator, settings):
    settings.ADMIN_REQUIRE_2FA = True
    _device(operator)
    response = _half_signed_in(operator).get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith(VERIFY)


def test_it_lets_operators_in_without_2fa_when_the_setting_is_off(operator, settings):
    settings.ADMIN_REQUIRE_2FA = False
    assert login_client(operator).get("/admin/").status_code == 200
