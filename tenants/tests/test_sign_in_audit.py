"""Sign-ins (failed too), sign-outs, 2FA enrolment and removal and token use are audited; no token starts expired."""

from __future__ import annotations

import base64
from datetime import timedelta

import pyotp
import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from quetzal.errors import ServiceError
from tenants.models import ApiToken, AuditEvent, Membership
from tenants.services import tokens
from tests.factories import PASSWORD
from tests.fixtures import api_client, login_client

ADDRESS = "198.51.100.23"


def _events(action: str):
    return AuditEvent.objects.filter(action=action)


def _sign_in(email: str, password: str = PASSWORD) -> Client:
    client = Client(REMOTE_ADDR=ADDRESS)
    client.post("/accounts/login/", {"login": email, "password": password})
    return client


def test_it_records_a_sign_in_in_each_of_the_persons_tenants(alice, bob):
    # Given a member of alice who also belongs to bob
    Membership.objects.create(user=alice.member, tenant=bob.tenant)
    # When they sign in with the real form
    _sign_in(alice.member.email)
    # Then both tenants' admins can see it, with the address
    events = _events("login.success").filter(actor=alice.member)
    assert {e.tenant.slug for e in events} == {"alice", "bob"}
    assert {e.ip_address for e in events} == {ADDRESS}


def test_it_records_failed_sign_ins_of_real_accounts(alice):
    _sign_in(alice.member.email, "wrong password")
    _sign_in("nobody@example.test", "wrong password")
    failed = _events("login.failed")
    # The account's tenant sees the attempt; an address with no account is left to the lockout counter
    assert [(e.tenant, e.actor, e.ip_address) for e in failed] == [(alice.tenant, alice.member, ADDRESS)]
    assert failed.get().data == {"locked_out": False}


def test_it_records_signing_out(alice):
    client = _sign_in(alice.member.email)
    client.post("/accounts/logout/")
    assert _events("login.logout").filter(tenant=alice.tenant, actor=alice.member, ip_address=ADDRESS).count() == 1


def test_it_records_2fa_enrolment_recovery_codes_and_removal(alice):
    client = login_client(alice.member, alice.tenant)
    client.get("/accounts/2fa/setup/")
    device = TOTPDevice.objects.get(pk=client.session["quetzal_totp_setup_device"])
    client.post("/accounts/2fa/setup/?keep=1", {"code": pyotp.TOTP(base64.b32encode(device.bin_key).decode()).now()})
    client.post("/settings/security/", {"action": "regenerate"})
    client.post("/settings/security/", {"action": "remove"})
    actions = list(_events_of(alice.member))
    assert actions == ["2fa.enrol", "2fa.recovery_codes", "2fa.remove"]


def _events_of(user):
    return (
        AuditEvent.objects.filter(actor=user, action__startswith="2fa.")
        .order_by("created_at", "id")
        .values_list("action", flat=True)
    )


def test_it_records_token_use_at_most_once_a_minute(alice):
    _, raw = tokens.create_token(membership=alice.membership(alice.member), name="ci")
    client = APIClient(REMOTE_ADDR=ADDRESS)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    for _ in range(3):
        assert client.get("/api/v1/tenant/current/").status_code == 200
    uses = _events("token.use")
    assert [(e.tenant, e.actor, e.ip_address) for e in uses] == [(alice.tenant, alice.member, ADDRESS)]
    # A minute later, use is recorded again
    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    client.get("/api/v1/tenant/current/")
    assert _events("token.use").count() == 2


@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(days=-400), timedelta(0)])
def test_it_refuses_a_token_that_would_be_born_expired(alice, offset):
    response = api_client(alice.member, alice.tenant).post(
        "/api/v1/tokens/", {"name": "old", "expires_at": (timezone.now() + offset).isoformat()}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"]["expires_at"]
    assert not ApiToken.objects.exists()
    with pytest.raises(ServiceError) as refused:
        tokens.create_token(membership=alice.membership(alice.member), name="x", expires_at=timezone.now() + offset)
    assert refused.value.code == "token_expiry_past"


def test_it_makes_a_token_that_expires_later(alice):
    later = timezone.now() + timedelta(days=30)
    response = api_client(alice.member, alice.tenant).post(
        "/api/v1/tokens/", {"name": "ci", "expires_at": later.isoformat()}, format="json"
    )
    assert response.status_code == 201 and ApiToken.objects.get().expires_at == later
