"""Personal API tokens: hashed, tenant-scoped, revocable."""

from __future__ import annotations

from rest_framework.test import APIClient

from tenants.models import ApiToken
from tests.fixtures import api_client


def _bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_it_creates_a_token_shown_once_and_stored_hashed(alice):
    response = api_client(alice.member, alice.tenant).post("/api/v1/tokens/", {"name": "laptop"})
    assert response.status_code == 201
    raw = response.json()["token"]
    token = ApiToken.objects.get()
    assert raw.startswith("qz_") and raw not in token.token_hash and token.prefix == raw[:9]
    listing = api_client(alice.member, alice.tenant).get("/api/v1/tokens/").json()
    assert "token" not in listing["results"][0]


def test_it_acts_in_its_own_tenant_only(alice, bob):
    # Given a person in two tenants with a token made in Alice's
    from tenants.models import Membership

    Membership.objects.create(user=bob.member, tenant=alice.tenant)
    raw = api_client(bob.member, alice.tenant).post("/api/v1/tokens/", {"name": "script"}).json()["token"]
    # Then the token works in Alice's tenant whatever the session says
    current = _bearer(raw).get("/api/v1/tenant/current/")
    assert current.status_code == 200 and current.json()["slug"] == "alice"


def test_it_stops_working_when_revoked(alice):
    client = api_client(alice.member, alice.tenant)
    created = client.post("/api/v1/tokens/", {"name": "ci"}).json()
    assert _bearer(created["token"]).get("/api/v1/tenant/current/").status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    refused = _bearer(created["token"]).get("/api/v1/tenant/current/")
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_token"
    again = client.delete(f"/api/v1/tokens/{created['id']}/")
    assert again.status_code == 409 and again.json()["code"] == "token_revoked"


def test_it_stops_working_when_the_person_leaves(alice):
    raw = api_client(alice.member, alice.tenant).post("/api/v1/tokens/", {"name": "ci"}).json()["token"]
    alice.membership(alice.member).delete()
    assert _bearer(raw).get("/api/v1/tenant/current/").status_code == 403


def test_it_refuses_a_made_up_token(db):
    response = _bearer("qz_made-up").get("/api/v1/tenant/current/")
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"
