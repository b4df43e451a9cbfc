"""A suspended (or pending) tenant is read-only except billing and the person's own account: every route is checked.

The routes come from the URL configuration, so a mutating route added later is covered without anyone listing it.
"""

from __future__ import annotations

import pytest

from tenants import readonly
from tenants.choices import TenantStatus
from tenants.models import ApiToken, Tenant
from tenants.services import tenants as tenant_services
from tenants.services import tokens
from tenants.tests.routes import Route, all_routes
from tests.fixtures import api_client, login_client

UNSAFE = ("post", "put", "patch", "delete")


def _stays_writable(route: Route) -> bool:
    """Routes tenants.readonly keeps open (the test reads the same list, and checks each one below)."""
    if readonly.WRITABLE_NAMESPACES.intersection(route.namespaces):
        return True
    return route.name in readonly.WRITABLE_ROUTES or route.name.startswith("account_")


def _refused(response, code: str) -> bool:
    if response.status_code == 405:
        return True  # the route takes no such method: nothing was written
    if response.status_code != 403:
        return False
    if response.get("Content-Type", "").startswith("application/json"):
        return response.json()["code"] == code
    return f'data-code="{code}"'.encode() in response.content


def _suspend(tenant: Tenant) -> None:
    tenant_services.set_status(tenant=tenant, status=TenantStatus.SUSPENDED, reason="test")


def _leaks(client, routes, code: str, *, skip=frozenset(), **extra) -> list[str]:
    found = []
    for route in routes:
        for method in UNSAFE:
            if (route.name, method) in skip:
                continue
            response = getattr(client, method)(route.url, **extra)
            if not _refused(response, code):
                found.append(f"{method.upper()} {route.url} ({route.name}) -> {response.status_code}")
    return found


def test_it_refuses_every_page_and_api_write_in_a_suspended_tenant(alice):
    # Given the owner of a suspended tenant, signed in
    _suspend(alice.tenant)
    client = login_client(alice.owner, alice.tenant)
    # When they send every unsafe method to every route that does not stay writable
    routes = [route for route in all_routes() if not _stays_writable(route)]
    # Then each is refused with tenant_suspended, before any view runs
    leaks = _leaks(client, routes, "tenant_suspended", skip={("api:token-detail", "delete")})
    assert not leaks, "\n".join(leaks)


def test_it_refuses_every_api_write_made_with_the_tenants_token(alice):
    # Given a token made while the tenant was active, then the tenant suspended
    _, raw = tokens.create_token(membership=alice.membership(alice.owner), name="ci")
    _suspend(alice.tenant)
    routes = [route for route in all_routes() if route.is_api]
    from rest_framework.test import APIClient

    skip = {("api:token-detail", "delete")}
    leaks = _leaks(APIClient(), routes, "tenant_suspended", skip=skip, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert not leaks, "\n".join(leaks)


def test_it_still_lets_people_revoke_tokens_switch_and_manage_their_account(alice, bob):
    token, _ = tokens.create_token(membership=alice.membership(alice.member), name="laptop")
    other, _ = tokens.create_token(membership=alice.membership(alice.member), name="phone")
    bob.tenant.memberships.create(user=alice.member)
    _suspend(alice.tenant)
    member = login_client(alice.member, alice.tenant)
    # Revoking ends access, so it stays open, on the API and the page
    assert api_client(alice.member, alice.tenant).delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    assert member.post("/settings/tokens/", {"action": "revoke", "token": other.pk}).status_code == 302
    assert not ApiToken.objects.filter(revoked_at__isnull=True, tenant=alice.tenant).exists()
    # But making one is refused
    made = member.post("/settings/tokens/", {"name": "new"})
    assert made.status_code == 403 and b'data-code="tenant_suspended"' in made.content
    # Switching to another tenant works, and there writes are allowed again
    assert member.post("/organisations/switch/", {"slug": "bob"}).status_code == 302
    assert member.post("/settings/tokens/", {"name": "in bob"}).status_code == 200


def test_it_reads_as_usual_in_a_suspended_tenant(alice):
    _suspend(alice.tenant)
    owner = login_client(alice.owner, alice.tenant)
    for path in ("/", "/manage/members/", "/manage/policies/", "/settings/tokens/"):
        response = owner.get(path)
        assert response.status_code == 200, path
        assert b'data-status="suspended"' in response.content
    assert api_client(alice.owner, alice.tenant).get("/api/v1/members/").status_code == 200


def test_it_refuses_joining_a_suspended_tenant_by_invitation(alice, bob):
    from tenants.services import invitations

    owner = alice.membership(alice.owner)
    _, raw = invitations.invite(tenant=alice.tenant, email=bob.member.email, actor_membership=owner)
    _suspend(alice.tenant)
    response = login_client(bob.member, bob.tenant).post(f"/invitations/{raw}/")
    assert response.status_code == 403
    assert not alice.tenant.memberships.filter(user=bob.member).exists()


@pytest.mark.parametrize("path", ["/manage/policies/", "/api/v1/invitations/"])
def test_it_refuses_writes_in_a_pending_tenant_with_its_own_code(alice, path):
    Tenant.objects.filter(pk=alice.tenant.pk).update(status=TenantStatus.PENDING)
    response = login_client(alice.owner, alice.tenant).post(path, {"email": "x@example.test"})
    assert _refused(response, "tenant_pending") and response.status_code == 403
