"""Self-service sign-up: closed by default; when opened, addresses are proven, nothing is revealed, tenants wait."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client

from tenants.choices import TenantStatus
from tenants.models import AuditEvent, Tenant, User
from tests.factories import UserFactory
from tests.fixtures import api_client, login_client

NEW_PASSWORD = "a long enough passphrase"


def _sign_up(email: str):
    client = Client()
    response = client.post("/accounts/signup/", {"email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    return response, client


@pytest.fixture
def open_signup(settings):
    settings.ACCOUNT_ALLOW_SIGNUP = True
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"


def test_it_keeps_sign_up_closed_by_default(db):
    response, _ = _sign_up("stranger@example.test")
    assert b"the sign up is currently closed" in response.content
    assert not User.objects.filter(email="stranger@example.test").exists()


def test_it_keeps_people_from_making_organisations_when_sign_up_is_closed(db):
    # Given someone with an account but no organisation (say, removed from their last one)
    client = login_client(UserFactory())
    # Then the page explains how to join, and making one is refused
    page = client.get("/organisations/new/")
    assert page.status_code == 200 and b'data-code="signup_closed"' in page.content
    assert client.post("/organisations/new/", {"name": "Acme"}).status_code == 403
    assert not Tenant.objects.filter(slug="acme").exists()
    assert b"New organisation" not in client.get("/settings/security/").content


def test_it_lets_operators_make_active_organisations(db):
    operator = UserFactory(is_staff=True)
    response = login_client(operator).post("/organisations/new/", {"name": "Acme"})
    assert response.status_code == 302
    assert Tenant.objects.get(slug="acme").status == TenantStatus.ACTIVE


def test_it_proves_the_address_and_holds_the_organisation_for_approval(open_signup, db):
    # Given someone signing up
    response, client = _sign_up("founder@example.test")
    # Then they are not signed in until they follow the emailed link
    assert response.status_code == 302 and response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session
    refused = client.post("/accounts/login/", {"login": "founder@example.test", "password": NEW_PASSWORD})
    assert "_auth_user_id" not in client.session, refused
    link = re.search(r"http://testserver(/accounts/confirm-email/[^\s]+)", mail.outbox[-1].body).group(1)
    client.post(link)
    response = client.post("/accounts/login/", {"login": "founder@example.test", "password": NEW_PASSWORD})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    # When they make an organisation
    assert client.post("/organisations/new/", {"name": "Founders"}).status_code == 302
    tenant = Tenant.objects.get(slug="founders")
    # Then it waits for approval, with no quota to spend: nothing can be written in it
    assert tenant.status == TenantStatus.PENDING and not tenant.is_active
    # and its quotas are the operator's small starter quotas, never "no limit" (0)
    starter = {field: getattr(tenant, field) for field in settings.SIGNUP_QUOTAS}
    assert starter == settings.SIGNUP_QUOTAS and all(starter.values())
    assert b'data-status="pending"' in client.get("/").content
    founder = User.objects.get(email="founder@example.test")
    refused = api_client(founder, tenant).post("/api/v1/tokens/", {"name": "ci"})
    assert refused.status_code == 403 and refused.json()["code"] == "tenant_pending"
    # When an operator approves it in the admin
    operator = User.objects.create_superuser(email="op@example.test", password="x" * 12)
    approved = login_client(operator).post(
        "/admin/tenants/tenant/", {"action": "approve", "_selected_action": [tenant.pk]}
    )
    assert approved.status_code == 302
    # Then it is active, the approval is audited, and its people can work
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.ACTIVE
    assert AuditEvent.objects.filter(tenant=tenant, action="tenant.approve", actor=operator).exists()
    assert api_client(founder, tenant).post("/api/v1/tokens/", {"name": "ci"}).status_code == 201


def test_it_does_not_tell_whether_an_address_has_an_account(open_signup, alice):
    # Given one sign-up with a fresh address and one with a member's address
    fresh, _ = _sign_up("nobody@example.test")
    taken, _ = _sign_up(alice.member.email)
    # Then both answers are the same "check your email" redirect, and no second account exists
    assert (fresh.status_code, fresh["Location"]) == (taken.status_code, taken["Location"])
    assert User.objects.filter(email__iexact=alice.member.email).count() == 1
    # And the member is told by email, where only they can read it
    assert mail.outbox[-1].to == [alice.member.email]


def test_it_does_not_reactivate_a_suspended_tenant_by_approval(alice):
    from tenants.services.tenants import approve, set_status

    set_status(tenant=alice.tenant, status=TenantStatus.SUSPENDED, reason="test")
    assert approve(tenant=alice.tenant, actor=None) is False
    alice.tenant.refresh_from_db()
    assert alice.tenant.status == TenantStatus.SUSPENDED
