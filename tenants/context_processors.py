"""Template context: the active tenant, the person's other tenants, their role."""

from __future__ import annotations

from django.conf import settings

from tenants.models import Membership
from tenants.twofactor import is_operator


def active_tenant(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"billing_enabled": settings.BILLING_ENABLED, "signup_open": settings.ACCOUNT_ALLOW_SIGNUP}
    membership = getattr(request, "membership", None)
    return {
        "active_tenant": getattr(request, "tenant", None),
        "active_membership": membership,
        "is_tenant_admin": bool(membership and membership.is_admin),
        "my_memberships": Membership.objects.filter(user=user).select_related("tenant"),
        "billing_enabled": settings.BILLING_ENABLED,
        "can_create_tenant": is_operator(request) or settings.ACCOUNT_ALLOW_SIGNUP,
    }
