"""Roles and removal: admins manage people, owners manage owners, the last owner stays."""

from __future__ import annotations

import pytest

from quetzal.errors import NotFound
from tenants.choices import Role
from tenants.models import AuditEvent, Membership
from tenants.services import members
from tests.fixtures import api_client, login_client


def test_it_changes_a_role(alice):
    target = alice.membership(alice.member)
    response = api_client(alice.admin, alice.tenant).patch(f"/api/v1/members/{target.pk}/", {"role": "admin"})
    assert response.status_code == 200
    assert Membership.objects.get(pk=target.pk).role == Role.ADMIN
    event = AuditEvent.objects.get(action="member.role")
    assert event.tenant == alice.tenant and event.actor == alice.admin
    assert event.data == {"email": alice.member.email, "from": "member", "to": "admin"}


def test_it_refuses_an_unknown_role_with_a_field_error(alice):
    target = alice.membership(alice.member)
    response = api_client(alice.admin, alice.tenant).patch(f"/api/v1/members/{target.pk}/", {"role": "emperor"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "role" in body["errors"]
    assert Membership.objects.get(pk=target.pk).role == Role.MEMBER


def test_it_keeps_the_last_owner(alice):
    owner = alice.membership(alice.owner)
    client = api_client(alice.owner, alice.tenant)
    demote = client.patch(f"/api/v1/members/{owner.pk}/", {"role": "member"})
    assert demote.status_code == 409 and demote.json()["code"] == "last_owner"
    leave = client.delete(f"/api/v1/members/{owner.pk}/")
    assert leave.status_code == 409 and leave.json()["code"] == "last_owner"
    assert Membership.objects.get(pk=owner.pk).role == Role.OWNER


def test_it_lets_an_owner_leave_once_another_owner_exists(alice):
    client = api_client(alice.owner, alice.tenant)
    assert client.patch(f"/api/v1/members/{alice.membership(alice.admin).pk}/", {"role": "owner"}).status_code == 200
    assert client.delete(f"/api/v1/members/{alice.membership(alice.owner).pk}/").status_code == 204
    assert not Membership.objects.filter(user=alice.owner, tenant=alice.tenant).exists()


def test_it_does_not_let_admins_touch_owners(alice):
    owner = alice.membership(alice.owner)
    client = api_client(alice.admin, alice.tenant)
    assert client.patch(f"/api/v1/members/{owner.pk}/", {"role": "member"}).json()["code"] == "owner_required"
    assert client.delete(f"/api/v1/members/{owner.pk}/").json()["code"] == "owner_required"


def test_it_does_not_let_members_manage_people(alice):
    client = api_client(alice.member, alice.tenant)
    target = alice.membership(alice.admin)
    assert client.patch(f"/api/v1/members/{target.pk}/", {"role": "member"}).status_code == 403
    assert client.delete(f"/api/v1/members/{target.pk}/").status_code == 403
    assert login_client(alice.member, alice.tenant).get("/manage/members/").status_code == 403


def test_it_shows_admins_the_members_page(alice, bob):
    page = login_client(alice.admin, alice.tenant).get("/manage/members/")
    assert page.status_code == 200
    assert alice.member.email.encode() in page.content
    assert bob.member.email.encode() not in page.content


def test_it_lets_a_member_leave(alice):
    client = login_client(alice.member, alice.tenant)
    assert client.post("/organisations/leave/").status_code == 302
    assert not Membership.objects.filter(user=alice.member).exists()


def test_it_refuses_in_the_service_a_person_of_another_tenant(alice, bob):
    # Given bob's member and alice's owner, whatever the caller resolved
    theirs = bob.membership(bob.member)
    owner = alice.membership(alice.owner)
    # When alice's owner is made to change or remove bob's member: not found, and nothing changed
    with pytest.raises(NotFound):
        members.change_role(membership=theirs, role=Role.OWNER, actor_membership=owner)
    with pytest.raises(NotFound):
        members.remove_member(membership=theirs, actor_membership=owner)
    assert Membership.objects.get(pk=theirs.pk).role == Role.MEMBER
    assert not AuditEvent.objects.filter(action__startswith="member.").exists()
