"""Personal API tokens: hashed, tenant-scoped, revocable."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import ApiToken, AuditEvent
from tenants.services.tokens import LAST_USED_EVERY_S, authenticate_token, create_token
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


def test_it_refuses_a_made_up_or_malformed_token_in_the_callers_language(db):
    made_up = _bearer("qz_made-up").get("/api/v1/tenant/current/", HTTP_ACCEPT_LANGUAGE="de")
    assert made_up.status_code == 401 and made_up.json()["code"] == "invalid_token"
    assert made_up.json()["detail"] == "Ungültiges, abgelaufenes oder widerrufenes Token."
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    malformed = client.get("/api/v1/tenant/current/", HTTP_ACCEPT_LANGUAGE="de")
    assert malformed.status_code == 401 and malformed.json()["detail"] == "Fehlerhafter Authorization-Header."


def test_it_writes_a_tokens_last_use_at_most_once_a_minute(alice):
    # Given a token never used
    token, raw = create_token(membership=alice.membership(alice.member), name="script")
    first = timezone.now()
    # When it is used, then again within the minute
    assert authenticate_token(raw, now=first) is not None
    with CaptureQueriesContext(connection) as again:
        assert authenticate_token(raw, now=first + timedelta(seconds=LAST_USED_EVERY_S - 1)) is not None
    # Then the second use read the token and wrote nothing: its last use and the audit are the first one's
    assert [q["sql"].split()[0] for q in again.captured_queries] == ["SELECT"]
    token.refresh_from_db()
    assert token.last_used_at == first and AuditEvent.objects.filter(action="token.use").count() == 1
    # And once the minute is over, the next use is written and audited again
    later = first + timedelta(seconds=LAST_USED_EVERY_S + 1)
    assert authenticate_token(raw, now=later) is not None
    token.refresh_from_db()
    assert token.last_used_at == later and AuditEvent.objects.filter(action="token.use").count() == 2


def test_it_does_not_write_the_last_use_of_a_token_used_a_moment_ago_through_the_api(alice):
    # Given a token used a moment ago
    token, raw = create_token(membership=alice.membership(alice.member), name="script")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    # When a script calls the API with it
    with CaptureQueriesContext(connection) as captured:
        assert _bearer(raw).get("/api/v1/tenant/current/").status_code == 200
    # Then no statement of the request touched the token's row
    assert not [q["sql"] for q in captured.captured_queries if q["sql"].startswith('UPDATE "tenants_apitoken"')]
