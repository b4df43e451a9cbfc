"""The active tenant: resolved once per request, switched by the person, never someone else's."""

from __future__ import annotations

from tenants.models import Membership, Tenant
from tests.fixtures import api_client, login_client


def test_it_switches_between_the_persons_tenants(alice, bob):
    Membership.objects.create(user=alice.member, tenant=bob.tenant)
    client = login_client(alice.member, alice.tenant)
    assert api_client(alice.member, alice.tenant).get("/api/v1/tenant/current/").json()["slug"] == "alice"
    assert client.post("/organisations/switch/", {"slug": "bob"}).status_code == 302
    assert client.get("/api/v1/tenant/current/").json()["slug"] == "bob"
    mine = {m["tenant"] for m in client.get("/api/v1/tenant/mine/").json()}
    assert mine == {"alice", "bob"}


def test_it_refuses_switching_to_a_foreign_or_unknown_tenant(alice, bob):
    client = login_client(alice.member, alice.tenant)
    assert client.post("/organisations/switch/", {"slug": "bob"}).status_code == 404
    assert client.post("/organisations/switch/", {"slug": "no-such-tenant"}).status_code == 404
    assert client.get("/api/v1/tenant/current/").json()["slug"] == "alice"


def test_it_sends_a_person_without_a_tenant_to_create_one(db, settings):
    from tests.factories import UserFactory

    settings.ACCOUNT_ALLOW_SIGNUP = True
    user = UserFactory()
    client = login_client(user)
    assert client.get("/").url == "/organisations/new/"
    response = client.post("/organisations/new/", {"name": "Acme Robotics"})
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="acme-robotics")
    assert Membership.objects.get(user=user, tenant=tenant).role == "owner"
    assert tenant.status == "pending"
    taken = client.post("/organisations/new/", {"name": "Acme Robotics"})
    assert taken.status_code == 400 and b"is taken" in taken.content
    assert Tenant.objects.filter(slug="acme-robotics").count() == 1
