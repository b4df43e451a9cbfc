"""Invitations: new and existing people accept, expiry, reuse, and clear refusals."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from quetzal.errors import ServiceError
from tenants.choices import Role
from tenants.models import AuditEvent, Invitation, Membership, User
from tenants.services import invitations
from tests.factories import PASSWORD, UserFactory
from tests.fixtures import api_client, login_client


def _invite(world, email: str, role: str = Role.MEMBER) -> str:
    response = login_client(world.admin, world.tenant).post(
        "/manage/members/", {"action": "invite", "email": email, "role": role}
    )
    assert response.status_code == 302
    link = re.search(r"http://testserver(/invitations/[^/\s]+/)", mail.outbox[-1].body).group(1)
    return link


def test_it_lets_a_new_person_accept(alice):
    # Given an emailed invitation to someone without an account
    link = _invite(alice, "newcomer@example.test")
    client = Client()
    assert b"Choose a password" in client.get(link).content
    # When they choose a password
    response = client.post(link, {"full_name": "New Comer", "password": "a long new password 42"})
    # Then they are signed in as a member of the tenant, with a verified address
    assert response.status_code == 302
    user = User.objects.get(email="newcomer@example.test")
    assert Membership.objects.get(user=user, tenant=alice.tenant).role == Role.MEMBER
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(tenant=alice.tenant, action="invitation.accept").exists()


def test_it_lets_an_existing_person_accept(alice, bob):
    link = _invite(alice, bob.member.email, role=Role.ADMIN)
    client = login_client(bob.member)
    response = client.post(link)
    assert response.status_code == 302
    assert Membership.objects.get(user=bob.member, tenant=alice.tenant).role == Role.ADMIN
    # They now belong to both tenants and can switch between them.
    assert client.post("/organisations/switch/", {"slug": "bob"}).status_code == 302
    assert Membership.objects.filter(user=bob.member).count() == 2


def test_it_refuses_a_reused_invitation(alice):
    link = _invite(alice, "once@example.test")
    Client().post(link, {"password": "a long new password 42"})
    response = Client().post(link, {"password": "a long new password 42"})
    assert response.status_code == 409
    assert b'data-code="invitation_used"' in response.content
    assert User.objects.filter(email="once@example.test").count() == 1


def test_it_refuses_an_expired_invitation(alice):
    link = _invite(alice, "late@example.test")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = Client().post(link, {"password": "a long new password 42"})
    assert response.status_code == 410
    assert b'data-code="invitation_expired"' in response.content
    assert not User.objects.filter(email="late@example.test").exists()


def test_it_refuses_an_unknown_invitation(db):
    response = Client().get("/invitations/not-a-real-token/")
    assert response.status_code == 404
    assert b'data-code="invitation_invalid"' in response.content


def test_it_refuses_another_address(alice, bob):
    link = _invite(alice, "someone-else@example.test")
    response = login_client(bob.member).post(link)
    assert response.status_code == 403
    assert not Membership.objects.filter(user=bob.member, tenant=alice.tenant).exists()


def test_it_does_not_let_a_member_invite(alice):
    response = api_client(alice.member, alice.tenant).post("/api/v1/invitations/", {"email": "x@example.test"})
    assert response.status_code == 403
    assert response.json()["code"] == "admin_required"
    assert not Invitation.objects.exists()


def test_it_only_lets_owners_invite_owners(alice):
    response = api_client(alice.admin, alice.tenant).post(
        "/api/v1/invitations/", {"email": "boss@example.test", "role": "owner"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "owner_required"


def test_it_refuses_inviting_a_member_twice(alice):
    response = api_client(alice.admin, alice.tenant).post("/api/v1/invitations/", {"email": alice.member.email})
    assert response.status_code == 409
    assert response.json()["code"] == "already_member"


def test_it_accepts_only_once_under_concurrent_service_calls(alice):
    invitation, raw = invitations.invite(
        tenant=alice.tenant, email="race@example.test", role=Role.MEMBER, actor_membership=alice.membership(alice.owner)
    )
    user = UserFactory(email="race@example.test")
    invitations.accept(raw=raw, user=user)
    with pytest.raises(ServiceError) as refused:
        invitations.accept(raw=raw, user=user)
    assert refused.value.code == "invitation_used"
    assert Membership.objects.filter(user=user).count() == 1


def test_it_creates_invitations_through_the_api(alice):
    response = api_client(alice.owner, alice.tenant).post(
        "/api/v1/invitations/", {"email": "API@Example.test", "role": "admin"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["email"] == "api@example.test"
    assert mail.outbox[-1].to == ["api@example.test"]
    assert PASSWORD not in mail.outbox[-1].body
