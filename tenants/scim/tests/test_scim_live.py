"""Quetzal's SCIM endpoint served for real (pytest-django's live server) and driven by PyPI's SCIM client
(scim2-client over httpx2) and compliance checker (scim2-tester), plus two creates of one userName at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import EnterpriseUser, Group, GroupMember, PatchOp, PatchOperation, SearchRequest, User
from scim2_tester import check_server
from scim2_tester.utils import Status

from tenants.choices import Role
from tenants.models import Membership
from tenants.models import User as Account
from tenants.scim import services
from tenants.scim.models import ScimUser

pytestmark = pytest.mark.django_db(transaction=True)
UserResource = User[EnterpriseUser]


@pytest.fixture
def scim_client(live_server, alice) -> Iterator[SyncSCIMClient]:
    services.save_mapping(tenant=alice.tenant, actor=alice.owner, group_roles={"Admins": Role.ADMIN})
    _, raw = services.issue_token(tenant=alice.tenant, actor=alice.owner)
    http = httpx2.Client(base_url=f"{live_server.url}/scim/v2", headers={"Authorization": f"Bearer {raw}"}, timeout=30)
    client = SyncSCIMClient(http)
    client.discover()
    yield client
    http.close()


def test_a_real_scim_client_provisions_groups_and_deactivates(scim_client, alice):
    # When the client discovers the server and creates a user
    assert {model.__schema__ for model in scim_client.resource_models} >= {UserResource.__schema__, Group.__schema__}
    created = scim_client.create(UserResource(user_name="ada@alice.test", external_id="e-1", active=True))
    assert created.id and created.user_name == "ada@alice.test"
    # Then it finds her with the filter Entra ID sends
    found = scim_client.query(UserResource, query_parameters=SearchRequest(filter='userName eq "ada@alice.test"'))
    assert [r.id for r in found.resources] == [created.id]
    # When it puts her in the group that maps to admin
    group = scim_client.create(Group(display_name="Admins", members=[GroupMember(value=created.id)]))
    assert Membership.objects.get(user__email="ada@alice.test", tenant=alice.tenant).role == Role.ADMIN
    # And deactivates her with a PATCH
    operation = PatchOp[UserResource](
        operations=[PatchOperation[UserResource](op=PatchOperation.Op.replace_, path="active", value=False)]
    )
    scim_client.modify(UserResource, created.id, operation)
    # Then her access here has ended
    assert not Membership.objects.filter(user__email="ada@alice.test", tenant=alice.tenant).exists()
    assert scim_client.query(UserResource, created.id).active is False
    scim_client.delete(Group, group.id)
    scim_client.delete(UserResource, created.id)
    assert not ScimUser.objects.exists()


def test_the_scim_compliance_checker_finds_no_error(scim_client):
    results = check_server(scim_client, raise_exceptions=False)
    failures = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    assert results and not failures, "\n".join(f"{r.title}: {r.reason}" for r in failures)


def test_two_creates_of_one_user_name_at_once_give_one_201_and_one_409(live_server, alice):
    # Given two connections of alice's directory, each ready to create the same person
    _, raw = services.issue_token(tenant=alice.tenant, actor=alice.owner)
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "twin@alice.test"}
    start, answers = threading.Barrier(2), []

    def create() -> None:
        with httpx2.Client(headers={"Authorization": f"Bearer {raw}"}, timeout=30) as http:
            start.wait()
            answers.append(http.post(f"{live_server.url}/scim/v2/Users", json=body))

    threads = [threading.Thread(target=create) for _ in range(2)]
    # When both send it at the same moment
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Then one made the person and the other was told it exists, in SCIM's error shape
    assert sorted(a.status_code for a in answers) == [201, 409]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["scimType"] == "uniqueness" and refused["status"] == "409"
    assert ScimUser.objects.filter(user_name_key="twin@alice.test").count() == 1
    assert Account.objects.filter(email="twin@alice.test").count() == 1
