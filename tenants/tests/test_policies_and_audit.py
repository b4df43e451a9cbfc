"""Policies through the API, malformed bodies, and the audit log's visibility."""

from __future__ import annotations

from tenants.models import AuditEvent, Tenant
from tests.fixtures import api_client, login_client


def test_it_updates_policies_and_audits_the_change(alice):
    client = api_client(alice.admin, alice.tenant)
    response = client.patch("/api/v1/tenant/current/", {"idle_timeout_minutes": 30, "require_2fa": True}, format="json")
    assert response.status_code == 200
    tenant = Tenant.objects.get(pk=alice.tenant.pk)
    assert (tenant.idle_timeout_minutes, tenant.require_2fa) == (30, True)
    event = AuditEvent.objects.get(action="tenant.policies")
    assert event.data["before"] == {"idle_timeout_minutes": 60, "require_2fa": False}


def test_it_refuses_malformed_bodies_with_field_errors(alice):
    client = api_client(alice.admin, alice.tenant)
    response = client.patch(
        "/api/v1/tenant/current/", {"idle_timeout_minutes": -4, "idle_action": "explode"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {"idle_timeout_minutes", "idle_action"}
    assert Tenant.objects.get(pk=alice.tenant.pk).idle_timeout_minutes == 60
    garbage = client.generic("PATCH", "/api/v1/tenant/current/", "{not json", content_type="application/json")
    assert garbage.status_code == 400 and garbage.json()["code"] == "parse_error"


def test_it_does_not_let_members_change_policies(alice):
    response = api_client(alice.member, alice.tenant).patch("/api/v1/tenant/current/", {"require_2fa": True})
    assert response.status_code == 403
    assert not Tenant.objects.get(pk=alice.tenant.pk).require_2fa


def test_it_shows_the_audit_log_to_admins_of_that_tenant_only(alice, bob):
    api_client(alice.admin, alice.tenant).patch("/api/v1/tenant/current/", {"idle_timeout_minutes": 5})
    api_client(bob.admin, bob.tenant).patch("/api/v1/tenant/current/", {"idle_timeout_minutes": 7})
    events = api_client(alice.admin, alice.tenant).get("/api/v1/audit-events/?action=tenant.").json()["results"]
    assert [e["data"]["after"] for e in events] == [{"idle_timeout_minutes": 5}]
    assert events[0]["actor"] == alice.admin.email
    assert api_client(alice.member, alice.tenant).get("/api/v1/audit-events/").status_code == 403
    page = login_client(alice.admin, alice.tenant).get("/manage/audit/")
    assert page.status_code == 200 and b"tenant.policies" in page.content
    assert login_client(alice.member, alice.tenant).get("/manage/audit/").status_code == 403


def test_it_serves_the_schema_and_docs_from_local_files(db):
    from django.test import Client

    client = Client()
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/members/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs.content
    assert b"cdn" not in docs.content.lower()
