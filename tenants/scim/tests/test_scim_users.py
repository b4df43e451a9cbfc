"""The Users endpoint as Entra ID and Okta call it: create, filter, page, replace, patch, deactivate, delete."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session

from tenants.choices import Role
from tenants.models import AuditEvent, Membership, User
from tenants.scim.models import ScimUser
from tests.fixtures import login_client

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _entra_user(user_name: str, external_id: str = "e-1") -> dict:
    """The create request Entra ID documents (its SCIM validator's sample), enterprise extension included."""
    return {
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ],
        "externalId": external_id,
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"},
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Engineering"},
    }


def _is_error(response, status: int, scim_type: str | None = None) -> bool:
    body = response.json()
    return (
        response.status_code == status
        and body["schemas"] == [ERROR]
        and body["status"] == str(status)
        and body.get("scimType") == scim_type
    )


def test_it_creates_a_member_of_the_tokens_tenant_only(alice_scim, bob):
    # When Entra ID creates a user
    response = alice_scim.call("post", "Users", _entra_user("ada@alice.test"))
    # Then a member of alice's tenant exists (and of no other), with the resource as sent
    assert response.status_code == 201
    body = response.json()
    assert response["Content-Type"] == "application/scim+json"
    assert response["Location"].endswith(f"/scim/v2/Users/{body['id']}")
    assert body["userName"] == "ada@alice.test" and body["active"] is True and body["externalId"] == "e-1"
    assert body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] == "Engineering"
    user = User.objects.get(email="ada@alice.test")
    assert user.full_name == "Ada Lovelace" and not user.has_usable_password()
    assert list(Membership.objects.filter(user=user).values_list("tenant__slug", "role")) == [("alice", Role.MEMBER)]
    assert AuditEvent.objects.filter(action="scim.user.create", tenant=alice_scim.world.tenant).exists()


def test_it_refuses_a_second_user_with_the_same_user_name_whatever_its_case(alice_scim):
    alice_scim.create_user("ada@alice.test")
    again = alice_scim.call("post", "Users", _entra_user("ADA@alice.test", external_id="e-2"))
    assert _is_error(again, 409, "uniqueness")
    assert ScimUser.objects.count() == 1


def test_it_never_takes_over_an_account_of_another_tenant(alice_scim, bob):
    # bob's member exists; alice's directory sends the same address
    response = alice_scim.call("post", "Users", _entra_user(bob.member.email))
    assert _is_error(response, 409, "uniqueness")
    assert not Membership.objects.filter(user=bob.member, tenant=alice_scim.world.tenant).exists()


def test_it_links_a_person_already_in_the_tenant(alice_scim):
    member = alice_scim.world.member
    body = alice_scim.create_user(member.email)
    assert ScimUser.objects.get(scim_id=body["id"]).user == member


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('userName eq "Ada@Alice.test"', ["ada@alice.test"]),
        ('externalId eq "x-2"', ["bo@alice.test"]),
        ('userName eq "nobody@alice.test"', []),
    ],
)
def test_it_filters_as_entra_and_okta_ask(alice_scim, query, expected):
    alice_scim.create_user("ada@alice.test", externalId="x-1")
    alice_scim.create_user("bo@alice.test", externalId="x-2")
    body = alice_scim.call("get", "Users", filter=query).json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert [r["userName"] for r in body["Resources"]] == expected and body["totalResults"] == len(expected)


@pytest.mark.parametrize("query", ['userName co "a"', "userName eq", 'title eq "x"', 'userName eq "a" or id eq "b"'])
def test_it_refuses_a_filter_it_cannot_answer(alice_scim, query):
    assert _is_error(alice_scim.call("get", "Users", filter=query), 400, "invalidFilter")


def test_it_pages_with_start_index_and_a_bounded_count(alice_scim):
    for n in range(5):
        alice_scim.create_user(f"p{n}@alice.test")
    page = alice_scim.call("get", "Users", startIndex=2, count=2).json()
    assert page["totalResults"] == 5 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert [r["userName"] for r in page["Resources"]] == ["p1@alice.test", "p2@alice.test"]
    assert alice_scim.call("get", "Users", count=0).json()["Resources"] == []
    assert len(alice_scim.call("get", "Users", count=10**9, startIndex=-4).json()["Resources"]) == 5
    assert _is_error(alice_scim.call("get", "Users", count="many"), 400, "invalidValue")
    assert alice_scim.call("get", "Users", startIndex=10**30).json()["Resources"] == []


def test_it_replaces_a_user_with_put(alice_scim):
    created = alice_scim.create_user("ada@alice.test", name={"givenName": "Ada"})
    body = _entra_user("ada@alice.test", external_id="new")
    body["name"] = {"givenName": "Augusta", "familyName": "King"}
    response = alice_scim.call("put", f"Users/{created['id']}", body)
    assert response.status_code == 200
    assert response.json()["name"]["givenName"] == "Augusta" and response.json()["externalId"] == "new"
    # The account is this organisation's alone: its name follows the directory
    assert User.objects.get(email="ada@alice.test").full_name == "Augusta King"


def test_it_applies_entras_patch_of_attributes(alice_scim):
    created = alice_scim.create_user("ada@alice.test", externalId="e-1")
    # The shape Entra ID documents for attribute changes: capitalised ops, an extension path, a filter path
    body = {
        "schemas": [PATCH],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": "Ada L."},
            {"op": "Add", "path": 'emails[type eq "work"].value', "value": "ada@alice.test"},
            {"op": "Replace", "path": "name.familyName", "value": "King"},
            {
                "op": "Add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                "value": "Maths",
            },
        ],
    }
    response = alice_scim.call("patch", f"Users/{created['id']}", body)
    assert response.status_code == 200, response.content
    got = alice_scim.call("get", f"Users/{created['id']}").json()
    assert got["displayName"] == "Ada L." and got["name"]["familyName"] == "King"
    assert got["emails"][0]["value"] == "ada@alice.test"
    assert got["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] == "Maths"


def test_it_deactivates_at_once_with_entras_string_boolean(alice_scim):
    # Given a provisioned person, signed in to alice's tenant
    created = alice_scim.create_user("ada@alice.test")
    user = User.objects.get(email="ada@alice.test")
    browser = login_client(user, alice_scim.world.tenant)
    assert browser.get("/").status_code == 200
    # When Entra ID deactivates them, exactly as it documents it
    body = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    response = alice_scim.call("patch", f"Users/{created['id']}", body)
    # Then the record says inactive, the membership and the session are gone, and it is audited
    assert response.status_code == 200 and response.json()["active"] is False
    assert not Membership.objects.filter(user=user, tenant=alice_scim.world.tenant).exists()
    assert not [s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk)]
    assert browser.get("/").status_code == 302
    event = AuditEvent.objects.get(action="scim.user.suspend")
    assert event.tenant == alice_scim.world.tenant and event.data["sessions_ended"] == 1
    # And reactivating gives the membership back
    body["Operations"][0]["value"] = "True"
    assert alice_scim.call("patch", f"Users/{created['id']}", body).json()["active"] is True
    assert Membership.objects.filter(user=user, tenant=alice_scim.world.tenant, role=Role.MEMBER).exists()
    assert AuditEvent.objects.filter(action="scim.user.restore").exists()


def test_it_deactivates_with_a_pathless_replace_as_okta_sends_it(alice_scim):
    created = alice_scim.create_user("ada@alice.test")
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert alice_scim.call("patch", f"Users/{created['id']}", body).json()["active"] is False
    assert not Membership.objects.filter(user__email="ada@alice.test").exists()


def test_it_keeps_a_suspended_persons_other_organisations(alice_scim, bob):
    created = alice_scim.create_user("ada@alice.test")
    user = User.objects.get(email="ada@alice.test")
    bob.tenant.memberships.create(user=user)
    elsewhere = login_client(user, bob.tenant)
    body = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": False}]}
    alice_scim.call("patch", f"Users/{created['id']}", body)
    assert Membership.objects.filter(user=user, tenant=bob.tenant).exists()
    assert elsewhere.get("/").status_code == 200


def test_it_refuses_to_deactivate_the_last_owner(alice_scim):
    owner = alice_scim.world.owner
    created = alice_scim.create_user(owner.email)
    body = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    assert _is_error(alice_scim.call("patch", f"Users/{created['id']}", body), 409)
    assert Membership.objects.filter(user=owner, role=Role.OWNER).exists()


def test_it_deletes_a_user_and_their_membership_here(alice_scim):
    created = alice_scim.create_user("ada@alice.test")
    assert alice_scim.call("delete", f"Users/{created['id']}").status_code == 204
    assert _is_error(alice_scim.call("get", f"Users/{created['id']}"), 404)
    assert not Membership.objects.filter(user__email="ada@alice.test").exists()
    assert AuditEvent.objects.filter(action="scim.user.delete").exists()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "scim_type"),
    [
        ("post", "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}, 400, "invalidValue"),
        ("post", "Users", ["not", "an", "object"], 400, "invalidSyntax"),
        ("post", "Users", {"userName": "no-address"}, 400, "invalidValue"),
        ("get", "Users/not-a-uuid", None, 404, None),
        ("patch", "Users/00000000-0000-0000-0000-000000000001", {"Operations": []}, 404, None),
        ("put", "Users", {}, 405, None),
        ("post", "Users", {"userName": "a" * 250 + "@alice.test"}, 400, "invalidValue"),
        ("post", "Users", {"userName": "ada@alice.test", "externalId": "x" * 255}, 400, "invalidValue"),
        ("post", "Users", {"userName": "ada\u0000@alice.test"}, 400, "invalidValue"),
        ("post", "Groups", {"displayName": "G" * 255}, 400, "invalidValue"),
        ("post", ".search", {}, 501, None),
        ("get", "Nothing/here", None, 404, None),
    ],
)
def test_it_answers_bad_requests_in_scims_error_shape(alice_scim, method, path, body, status, scim_type):
    response = alice_scim.call(method, path, body)
    assert response.json()["schemas"] == [ERROR] and response.status_code == status
    if scim_type:
        assert response.json()["scimType"] == scim_type


def test_it_answers_a_bad_patch_in_scims_error_shape(alice_scim):
    created = alice_scim.create_user("ada@alice.test")
    for operations in ([{"op": "explode", "path": "active"}], [{"op": "replace", "path": "nope", "value": 1}], "x"):
        response = alice_scim.call("patch", f"Users/{created['id']}", {"schemas": [PATCH], "Operations": operations})
        assert response.status_code == 400 and response.json()["schemas"] == [ERROR], response.content


def test_it_refuses_a_body_that_is_not_json(alice_scim):
    from django.test import Client

    response = Client().post(
        "/scim/v2/Users", "{nope", content_type="application/scim+json", HTTP_AUTHORIZATION=f"Bearer {alice_scim.token}"
    )
    assert _is_error(response, 400, "invalidSyntax")


def test_it_moves_the_address_only_of_an_account_the_directory_owns(alice_scim, bob):
    # A provisioned account (no password, in alice only) follows a new address
    created = alice_scim.create_user("ada@alice.test")
    moved = alice_scim.call("put", f"Users/{created['id']}", {"userName": "ada.king@alice.test"})
    assert moved.status_code == 200 and User.objects.filter(email="ada.king@alice.test").exists()
    # A member with a Quetzal password keeps theirs (the directory could otherwise reset it)
    member = alice_scim.world.member
    linked = alice_scim.create_user(member.email)
    alice_scim.call("put", f"Users/{linked['id']}", {"userName": "taken.over@alice.test"})
    member.refresh_from_db()
    assert member.email == "member@alice.test"
    # And so does someone who also belongs to another organisation
    bob.tenant.memberships.create(user=User.objects.get(email="ada.king@alice.test"))
    alice_scim.call("put", f"Users/{created['id']}", {"userName": "elsewhere@alice.test"})
    assert User.objects.filter(email="ada.king@alice.test").exists()
