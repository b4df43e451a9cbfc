"""A tenant that is not active (suspended, or awaiting approval) is read-only but for billing and own accounts.

One rule for pages (tenants.middleware.ReadOnlyTenantMiddleware) and the API (quetzal.api.permissions), decided
per route, so a mutating route added later is refused without anyone remembering to.
"""

from __future__ import annotations

from django.utils.translation import gettext

from quetzal.errors import Forbidden
from tenants.choices import TenantStatus

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# Page namespaces that stay writable: billing (paying is how a suspension ends) and the operators' admin.
WRITABLE_NAMESPACES = frozenset({"billing", "admin"})
# Page routes that act on the person or on another tenant, not on the read-only one. allauth's
# `account_*` pages (password, email addresses, sign-out) belong here too.
WRITABLE_ROUTES = frozenset(
    {
        "healthz",
        "portal:settings",  # the person's console preferences
        "set_language",  # the person's language, kept in their session
        "tenants:2fa_setup",
        "tenants:2fa_verify",
        "tenants:create",
        "tenants:invitation_accept",  # joins the invitation's tenant, which the service checks
        "tenants:leave",
        "tenants:security",
        "tenants:switch",
    }
)


class ReadOnly(Forbidden):
    """Refusal of a write in a tenant that is not active (403 with a stable code)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail, code=code)


def refusal(tenant) -> ReadOnly | None:
    """Why nothing may be written in this tenant now, or None when it is active (or there is none)."""
    if tenant is None or tenant.is_active:
        return None
    if tenant.status == TenantStatus.PENDING:
        return ReadOnly(
            "tenant_pending",
            gettext("%(name)s is waiting for the operator's approval: nothing can be changed yet.")
            % {"name": tenant.name},
        )
    return ReadOnly(
        "tenant_suspended",
        gettext("%(name)s is suspended: nothing can be changed until it is reactivated.") % {"name": tenant.name},
    )


def ensure_writable(tenant) -> None:
    """Services call this for writes that no route guards (e.g. joining another tenant)."""
    refused = refusal(tenant)
    if refused is not None:
        raise refused


def page_route_writable(match, request, view_func) -> bool:
    """Whether a page route may write in a read-only tenant (allow-listed, or its view says so for this request)."""
    if match is None:
        return True  # no route: the answer is a 404 anyway
    if WRITABLE_NAMESPACES.intersection(match.namespaces) or "api" in match.namespaces:
        return True  # the API decides in its permission, where the token's tenant is known
    if match.view_name in WRITABLE_ROUTES or match.view_name.startswith("account_"):
        return True
    hook = getattr(getattr(view_func, "view_class", None), "writable_when_read_only", None)
    return bool(hook is not None and hook(request))
