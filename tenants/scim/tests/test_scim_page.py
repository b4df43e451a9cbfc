"""The admin console's provisioning page: the base URL to paste, the token shown once, the group → role mapping."""

from __future__ import annotations

import re

from django.test import Client
from django.utils import translation

from tenants.choices import Role
from tenants.models import AuditEvent, Membership
from tenants.scim import services
from tenants.scim.models import ScimDirectory
from tests.fixtures import login_client

PAGE = "/manage/provisioning/"


def _token_in(response) -> str:
    found = re.search(r'data-testid="scim-new-token"[^>]*>(qzscim_[\w-]+)<', response.content.decode())
    assert found, "the new token is on the page"
    return found.group(1)


def test_it_shows_the_owner_the_base_url_and_a_new_token_once(alice):
    owner = login_client(alice.owner, alice.tenant)
    page = owner.get(PAGE)
    assert page.status_code == 200 and "http://testserver/scim/v2" in page.content.decode()
    # When the owner makes a token
    made = owner.post(PAGE, {"action": "issue"})
    raw = _token_in(made)
    # Then it works against the endpoint, is kept only as a hash, and is not shown again
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    directory = ScimDirectory.objects.get(tenant=alice.tenant)
    assert directory.token_hash == services.hash_token(raw) and raw not in str(directory.__dict__)
    again = owner.get(PAGE).content.decode()
    assert raw not in again and directory.token_prefix in again
    assert AuditEvent.objects.filter(action="scim.token.create", actor=alice.owner).exists()


def test_it_lets_an_admin_revoke_the_token(alice):
    _, raw = services.issue_token(tenant=alice.tenant, actor=alice.owner)
    admin = login_client(alice.admin, alice.tenant)
    assert admin.post(PAGE, {"action": "revoke"}).status_code == 302
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    assert AuditEvent.objects.filter(action="scim.token.revoke", actor=alice.admin).exists()
    # Revoking again says there is none, without an error page
    assert admin.post(PAGE, {"action": "revoke"}, follow=True).status_code == 200


def test_it_keeps_members_out(alice):
    member = login_client(alice.member, alice.tenant)
    assert member.get(PAGE).status_code == 403
    assert member.post(PAGE, {"action": "issue"}).status_code == 403
    assert not ScimDirectory.objects.filter(tenant=alice.tenant).exclude(token_hash="").exists()


def test_it_saves_the_group_roles_and_applies_them(alice_scim):
    alice = alice_scim.world
    ada = alice_scim.create_user("ada@alice.test")
    alice_scim.call("post", "Groups", {"displayName": "IT", "members": [{"value": ada["id"]}]})
    owner = login_client(alice.owner, alice.tenant)
    assert owner.post(PAGE, {"action": "mapping", "group_roles": "IT = admin\n\n"}).status_code == 302
    assert Membership.objects.get(user__email="ada@alice.test", tenant=alice.tenant).role == Role.ADMIN
    assert "IT = admin" in owner.get(PAGE).content.decode()
    bad = owner.post(PAGE, {"action": "mapping", "group_roles": "IT = emperor"})
    assert bad.status_code == 400 and "Line 1" in bad.content.decode()


def test_it_speaks_german(alice):
    owner = login_client(alice.owner, alice.tenant)
    with translation.override("de"):
        page = owner.get(PAGE, HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Bereitstellung (SCIM)" in page and "Token anlegen" in page and "Verzeichnis-Sync" in page


def test_it_keeps_admins_from_making_owners_through_the_directory(alice):
    # An admin may map groups to admin or member, but not to owner
    admin = login_client(alice.admin, alice.tenant)
    refused = admin.post(PAGE, {"action": "mapping", "group_roles": "IT = owner"})
    assert refused.status_code == 403 and not ScimDirectory.objects.get(tenant=alice.tenant).role_names()
    assert admin.post(PAGE, {"action": "mapping", "group_roles": "IT = admin"}).status_code == 302
    # Once an owner made a group give ownership, only an owner makes the token (its holder fills that group)
    services.save_mapping(tenant=alice.tenant, actor=alice.owner, group_roles={"IT": Role.OWNER})
    assert admin.post(PAGE, {"action": "issue"}).status_code == 302
    assert not ScimDirectory.objects.get(tenant=alice.tenant).has_token
    assert admin.post(PAGE, {"action": "mapping", "group_roles": "IT = member"}).status_code == 403
    assert _token_in(login_client(alice.owner, alice.tenant).post(PAGE, {"action": "issue"}))
