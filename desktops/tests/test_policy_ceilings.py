"""A policy value a tenant admin sets can never break later pages: each has a ceiling the API enforces."""

from __future__ import annotations

from desktops.choices import DesktopState
from desktops.tests.factories import DesktopFactory
from tenants.models import Tenant
from tenants.models.tenant import MAX_MINUTES, MAX_SESSION_HOURS, POLICY_FIELDS
from tests.fixtures import api_client, login_client


def test_it_refuses_policy_values_beyond_their_ceiling(alice):
    client = api_client(alice.admin, alice.tenant)
    for field, value in (("idle_timeout_minutes", 2**31 - 1), ("max_session_hours", MAX_SESSION_HOURS + 1)):
        response = client.patch("/api/v1/tenant/current/", {field: value}, format="json")
        assert response.status_code == 400 and field in response.json()["errors"]
    form = {f: getattr(alice.tenant, f) for f in POLICY_FIELDS if not isinstance(getattr(alice.tenant, f), bool)}
    pages = login_client(alice.admin, alice.tenant)
    assert pages.post("/manage/policies/", {**form, "idle_timeout_minutes": 10**9}).status_code == 400
    assert pages.post("/manage/policies/", form).status_code == 302  # the rest of the form was fine
    tenant = Tenant.objects.get(pk=alice.tenant.pk)
    assert tenant.idle_timeout_minutes == 60 and tenant.max_session_hours == 0


def test_it_lists_desktops_with_every_policy_at_its_ceiling(alice, template):
    # Given the largest deadlines the policies allow, and a desktop running under them
    response = api_client(alice.admin, alice.tenant).patch(
        "/api/v1/tenant/current/",
        {"idle_timeout_minutes": MAX_MINUTES, "max_session_hours": MAX_SESSION_HOURS},
        format="json",
    )
    assert response.status_code == 200
    DesktopFactory(world=alice, template=template, state=DesktopState.RUNNING, lived_in=True)
    # Then the desktop listing still computes its deadlines
    listed = api_client(alice.member, alice.tenant).get("/api/v1/desktops/")
    assert listed.status_code == 200
    desktop = listed.json()["results"][0]
    assert desktop["idle_action_at"] and desktop["session_ends_at"]
