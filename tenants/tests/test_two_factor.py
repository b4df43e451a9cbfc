"""TOTP enrolment, the second sign-in step, replay refusal, recovery codes and tenant enforcement."""

from __future__ import annotations

import base64
import re
import time

import pyotp
import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import PASSWORD


def _totp(device: TOTPDevice) -> pyotp.TOTP:
    return pyotp.TOTP(base64.b32encode(device.bin_key).decode())


def _next_code(device: TOTPDevice) -> str:
    """The next 30 s step's code: enrolment already used the current one (within the allowed drift)."""
    return _totp(device).at(time.time() + 30)


def _sign_in(email: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def _enrol(client: Client) -> tuple[TOTPDevice, list[str]]:
    page = client.get("/accounts/2fa/setup/")
    assert page.status_code == 200 and b"data:image/svg+xml;base64," in page.content
    device = TOTPDevice.objects.get(pk=client.session["quetzal_totp_setup_device"])
    response = client.post("/accounts/2fa/setup/?keep=1", {"code": _totp(device).now()})
    assert response.status_code == 200
    codes = re.search(rb'data-testid="recovery-codes">(.*?)</pre>', response.content, re.S).group(1).split()
    device.refresh_from_db()
    return device, [c.decode() for c in codes]


def test_it_enrols_a_device_with_a_real_totp_code(alice):
    # Given a signed-in member without 2FA
    client = _sign_in(alice.member.email)
    # When they scan the code and confirm with the code their app shows
    device, codes = _enrol(client)
    # Then the device is confirmed, ten recovery codes were issued, and the portal opens
    assert device.confirmed
    assert len(codes) == 10
    assert client.get("/").status_code == 200


def test_it_refuses_a_wrong_code_at_enrolment(alice):
    client = _sign_in(alice.member.email)
    client.get("/accounts/2fa/setup/")
    response = client.post("/accounts/2fa/setup/?keep=1", {"code": "000000"})
    assert response.status_code == 400
    assert not TOTPDevice.objects.filter(user=alice.member, confirmed=True).exists()


@pytest.fixture
def enrolled(alice):
    client = _sign_in(alice.member.email)
    device, codes = _enrol(client)
    return device, codes


def test_it_asks_for_the_second_factor_after_the_password(alice, enrolled):
    device, _ = enrolled
    client = _sign_in(alice.member.email)
    assert client.get("/").url.startswith("/accounts/2fa/verify/")
    refused = client.get("/api/v1/tenant/current/")
    assert refused.status_code == 401 and refused.json()["code"] == "otp_required"
    code = _next_code(device)
    response = client.post("/accounts/2fa/verify/", {"code": code, "next": "/"})
    assert response.status_code == 302 and response.url == "/"
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/tenant/current/").status_code == 200


def test_it_refuses_a_replayed_code(alice, enrolled):
    device, _ = enrolled
    code = _next_code(device)
    first = _sign_in(alice.member.email)
    assert first.post("/accounts/2fa/verify/", {"code": code}).status_code == 302
    second = _sign_in(alice.member.email)
    response = second.post("/accounts/2fa/verify/", {"code": code})
    assert response.status_code == 400
    assert second.get("/").url.startswith("/accounts/2fa/verify/")


def test_it_accepts_a_recovery_code_once(alice, enrolled, settings):
    # django-otp delays the next try after a failure; that throttle is not what this test is about.
    settings.OTP_STATIC_THROTTLE_FACTOR = 0
    _, codes = enrolled
    first = _sign_in(alice.member.email)
    assert first.post("/accounts/2fa/verify/", {"code": codes[0]}).status_code == 302
    assert first.get("/").status_code == 200
    second = _sign_in(alice.member.email)
    assert second.post("/accounts/2fa/verify/", {"code": codes[0]}).status_code == 400
    assert second.post("/accounts/2fa/verify/", {"code": codes[1]}).status_code == 302


def test_it_sends_members_to_enrolment_when_the_tenant_requires_it(alice, bob):
    alice.tenant.require_2fa = True
    alice.tenant.save()
    client = _sign_in(alice.member.email)
    response = client.get("/")
    assert response.status_code == 302 and response.url == "/accounts/2fa/setup/"
    api = client.get("/api/v1/tenant/current/")
    assert api.status_code == 403 and api.json()["code"] == "otp_enrolment_required"
    _enrol(client)
    assert client.get("/").status_code == 200
    # Bob's tenant does not require it: his members go straight in.
    assert _sign_in(bob.member.email).get("/").status_code == 200


def test_it_does_not_greet_a_person_as_signed_in_before_the_code(alice, enrolled):
    # Given a member with a device, after the password only
    client = _sign_in(alice.member.email)
    # When the code page opens
    page = client.get("/accounts/2fa/verify/", follow=True)
    # Then it asks for the code in the shared layout and says nothing about being signed in
    html = page.content.decode()
    assert 'data-testid="otp-form"' in html and 'class="container auth-card"' in html
    assert "Successfully signed in" not in html


def test_it_greets_a_person_without_a_device_on_sign_in(alice):
    client = _sign_in(alice.member.email)
    assert "Successfully signed in" in client.get("/").content.decode()
