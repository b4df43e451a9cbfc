"""A tenant's provisioning token reaches that tenant's people and groups only, and nothing without it."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.choices import TenantStatus
from tenants.models import Membership, User
from tenants.scim import services
from tenants.scim.models import ScimDirectory, ScimUser
from tenants.services import tenants as tenant_services
from tests.fixtures import login_client

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def test_it_never_lets_one_tenants_token_read_or_write_anothers_people(alice_scim, bob_scim):
    # Given a person and a group provisioned by bob's directory
    bo = bob_scim.create_user("bo@bob.test", externalId="b-1")
    group = bob_scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "Staff"}).json()
    deactivate = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    # When alice's token lists, filters, reads, changes and deletes them
    assert alice_scim.call("get", "Users").json()["totalResults"] == 0
    assert alice_scim.call("get", "Users", filter='userName eq "bo@bob.test"').json()["Resources"] == []
    assert alice_scim.call("get", "Groups").json()["totalResults"] == 0
    for method, body in (("get", None), ("patch", deactivate), ("put", {"userName": "x@alice.test"}), ("delete", None)):
        assert alice_scim.call(method, f"Users/{bo['id']}", body).status_code == 404, method
    for method, body in (("get", None), ("patch", deactivate), ("delete", None)):
        assert alice_scim.call(method, f"Groups/{group['id']}", body).status_code == 404, method
    # Then bob's person is untouched
    assert ScimUser.objects.get(scim_id=bo["id"]).active is True
    assert Membership.objects.filter(user__email="bo@bob.test", tenant=bob_scim.world.tenant).exists()


@pytest.mark.parametrize(
    "header",
    ["", "Bearer ", "Bearer qzscim_wrong", "Basic YTpi", "Token qz_abc"],
)
def test_it_refuses_a_request_without_the_tenants_token(alice_scim, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().get("/scim/v2/Users", **extra)
    assert response.status_code == 401 and response.json()["status"] == "401"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_signed_in_browser_without_the_token(alice):
    response = login_client(alice.owner, alice.tenant).get("/scim/v2/Users")
    assert response.status_code == 401


def test_it_refuses_a_revoked_or_replaced_token(alice_scim):
    old = alice_scim.token
    _, new = services.issue_token(tenant=alice_scim.world.tenant, actor=alice_scim.world.owner)
    alice_scim.token = old
    assert alice_scim.call("get", "Users").status_code == 401
    alice_scim.token = new
    assert alice_scim.call("get", "Users").status_code == 200
    services.revoke_token(tenant=alice_scim.world.tenant, actor=alice_scim.world.owner)
    assert alice_scim.call("get", "Users").status_code == 401


def test_it_keeps_only_the_tokens_hash(alice_scim):
    directory = ScimDirectory.objects.get(tenant=alice_scim.world.tenant)
    assert alice_scim.token not in str(ScimDirectory.objects.filter(pk=directory.pk).values().get())
    assert directory.token_hash == services.hash_token(alice_scim.token)


def test_it_refuses_writes_in_a_suspended_tenant_but_still_answers_reads(alice_scim):
    tenant_services.set_status(tenant=alice_scim.world.tenant, status=TenantStatus.SUSPENDED, reason="test")
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@alice.test"}
    response = alice_scim.call("post", "Users", body)
    assert response.status_code == 403 and response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert not User.objects.filter(email="ada@alice.test").exists()
    assert alice_scim.call("get", "Users").status_code == 200


def test_it_describes_itself_to_a_client(alice_scim):
    config = alice_scim.call("get", "ServiceProviderConfig").json()
    assert config["patch"]["supported"] is True and config["filter"]["maxResults"] == 200
    types = alice_scim.call("get", "ResourceTypes").json()
    assert {t["endpoint"] for t in types["Resources"]} == {"/Users", "/Groups"}
    assert alice_scim.call("get", "ResourceTypes/User").json()["schema"].endswith(":User")
    schemas = alice_scim.call("get", "Schemas").json()["Resources"]
    assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" in {s["id"] for s in schemas}
    assert alice_scim.call("get", "Schemas/urn:nope").status_code == 404
