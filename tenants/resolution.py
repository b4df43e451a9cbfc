"""The one place that decides which tenant a request or socket acts in."""

from __future__ import annotations

from tenants.models import ApiToken, Membership, Tenant
from tenants.services import tokens

SESSION_KEY = "quetzal_tenant_id"


def resolve_membership(user, preferred_tenant_id: int | None) -> Membership | None:
    """The user's membership in the preferred tenant, else their oldest one, else None."""
    if user is None or not user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("tenant").filter(user=user)
    if preferred_tenant_id:
        preferred = memberships.filter(tenant_id=preferred_tenant_id).first()
        if preferred is not None:
            return preferred
    return memberships.order_by("created_at", "id").first()


def bind(target, membership: Membership | None) -> None:
    """Put the membership and its tenant on a request (or any object) in one shape."""
    target.membership = membership
    target.tenant = membership.tenant if membership else None


def resolve_page_tenant(request) -> None:
    """Pages act in the tenant chosen in the session (the switcher writes it)."""
    bind(request, resolve_membership(request.user, request.session.get(SESSION_KEY)))


def resolve_api_tenant(request) -> None:
    """An API token acts in its own tenant only; a browser session in the session's tenant."""
    token = request.auth
    if isinstance(token, ApiToken):
        bind(request, tokens.membership_of(token))
        return
    bind(request, resolve_membership(request.user, request.session.get(SESSION_KEY)))


def resolve_scope_tenant(scope: dict) -> Membership | None:
    """A WebSocket acts in the tenant of the browser session that opened it."""
    session = scope.get("session")
    preferred = session.get(SESSION_KEY) if session is not None else None
    return resolve_membership(scope.get("user"), preferred)


def switch_tenant(request, slug: str) -> Tenant | None:
    """Make the tenant with this slug active for the session, if the user belongs to it."""
    membership = Membership.objects.select_related("tenant").filter(user=request.user, tenant__slug=slug).first()
    if membership is None:
        return None
    request.session[SESSION_KEY] = membership.tenant_id
    bind(request, membership)
    return membership.tenant
