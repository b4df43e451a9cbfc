"""Groups as Entra ID and Okta push them, and the roles their names map to."""

from __future__ import annotations

from tenants.choices import Role
from tenants.models import AuditEvent, Membership
from tenants.scim import services
from tenants.scim.models import ScimGroup

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _role(directory, email: str) -> str | None:
    found = Membership.objects.filter(tenant=directory.world.tenant, user__email=email).first()
    return found.role if found else None


def _map(directory, mapping: dict[str, str]) -> None:
    services.save_mapping(tenant=directory.world.tenant, actor=directory.world.owner, group_roles=mapping)


def test_it_gives_the_role_a_groups_name_maps_to_and_takes_it_back(alice_scim):
    # Given "IT Admins" maps to admin, and a provisioned member
    _map(alice_scim, {"IT Admins": Role.ADMIN})
    ada = alice_scim.create_user("ada@alice.test")
    # When Entra ID creates the group, then adds her as it documents it
    group = alice_scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "IT Admins", "members": []}).json()
    add = {"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [{"value": ada["id"]}]}]}
    assert alice_scim.call("patch", f"Groups/{group['id']}", add).status_code == 200
    # Then she is an admin, and the group lists her
    assert _role(alice_scim, "ada@alice.test") == Role.ADMIN
    listed = alice_scim.call("get", f"Groups/{group['id']}").json()
    assert [m["value"] for m in listed["members"]] == [ada["id"]]
    assert alice_scim.call("get", f"Users/{ada['id']}").json()["groups"][0]["display"] == "IT Admins"
    # When Entra ID removes her with its documented shape (a value list, not a filter)
    remove = {"schemas": [PATCH], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": ada["id"]}]}]}
    assert alice_scim.call("patch", f"Groups/{group['id']}", remove).status_code == 200
    # Then she is a member again, and it was audited
    assert _role(alice_scim, "ada@alice.test") == Role.MEMBER
    assert AuditEvent.objects.filter(action="scim.member.role", tenant=alice_scim.world.tenant).count() == 2


def test_it_takes_oktas_filter_removal_and_rename(alice_scim):
    _map(alice_scim, {"Owners": Role.OWNER})
    ada = alice_scim.create_user("ada@alice.test")
    body = {"schemas": [GROUP], "displayName": "Staff", "members": [{"value": ada["id"]}]}
    group = alice_scim.call("post", "Groups", body).json()
    # Okta renames with a pathless replace that carries the id, then removes with a filter
    rename = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "value": {"id": group["id"], "displayName": "Owners"}}],
    }
    assert alice_scim.call("patch", f"Groups/{group['id']}", rename).json()["displayName"] == "Owners"
    assert _role(alice_scim, "ada@alice.test") == Role.OWNER
    remove = {"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{ada["id"]}"]'}]}
    assert alice_scim.call("patch", f"Groups/{group['id']}", remove).json()["members"] == []
    assert _role(alice_scim, "ada@alice.test") == Role.MEMBER


def test_it_filters_groups_by_display_name_and_leaves_members_out_when_asked(alice_scim):
    ada = alice_scim.create_user("ada@alice.test")
    alice_scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "Staff", "members": [{"value": ada["id"]}]})
    alice_scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "Other"})
    found = alice_scim.call("get", "Groups", filter='displayName eq "staff"', excludedAttributes="members").json()
    assert [g["displayName"] for g in found["Resources"]] == ["Staff"] and "members" not in found["Resources"][0]


def test_it_refuses_a_second_group_of_the_same_name(alice_scim):
    alice_scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "Staff"})
    again = alice_scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "STAFF"})
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"


def test_it_refuses_a_member_that_is_not_a_user_of_the_tenant(alice_scim, bob_scim):
    bobs = bob_scim.create_user("bo@bob.test")
    body = {"schemas": [GROUP], "displayName": "Staff", "members": [{"value": bobs["id"]}]}
    response = alice_scim.call("post", "Groups", body)
    assert response.status_code == 400 and response.json()["scimType"] == "invalidValue"
    assert not ScimGroup.objects.exists()


def test_it_keeps_the_last_owner_when_their_group_goes(alice_scim):
    _map(alice_scim, {"Owners": Role.OWNER})
    owner = alice_scim.world.owner
    created = alice_scim.create_user(owner.email)
    body = {"schemas": [GROUP], "displayName": "Owners", "members": [{"value": created["id"]}]}
    group = alice_scim.call("post", "Groups", body).json()
    assert alice_scim.call("delete", f"Groups/{group['id']}").status_code == 204
    assert _role(alice_scim, owner.email) == Role.OWNER
    assert AuditEvent.objects.filter(action="scim.group.delete").exists()


def test_it_replaces_a_group_with_put(alice_scim):
    ada, bo = alice_scim.create_user("ada@alice.test"), alice_scim.create_user("bo@alice.test")
    group = alice_scim.call(
        "post", "Groups", {"schemas": [GROUP], "displayName": "Staff", "members": [{"value": ada["id"]}]}
    ).json()
    body = {"schemas": [GROUP], "displayName": "Staff", "members": [{"value": bo["id"]}]}
    replaced = alice_scim.call("put", f"Groups/{group['id']}", body).json()
    assert [m["value"] for m in replaced["members"]] == [bo["id"]]
