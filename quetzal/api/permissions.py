"""Permissions resolved against the active tenant membership."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from tenants import readonly
from tenants.choices import ADMIN_ROLES
from tenants.models import ApiToken
from tenants.twofactor import enrolment_required, is_operator


def refuse_automation_only_token(request, view) -> None:
    """An automation token reaches only the views that scope it further (desktops.api.automation)."""
    automation_only = isinstance(request.auth, ApiToken) and request.auth.is_automation_only
    if automation_only and not getattr(view, "automation_tokens", False):
        raise exceptions.PermissionDenied("This token is limited to automation.", code="token_scope")


class IsTenantMember(BasePermission):
    """The caller is signed in and belongs to the active tenant."""

    message = "You are not a member of an active tenant."
    code = "no_tenant"

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if not isinstance(request.auth, ApiToken) and enrolment_required(request):
            raise exceptions.PermissionDenied(
                "Your organisation requires two-factor authentication: enrol a device first.",
                code="otp_enrolment_required",
            )
        if getattr(request, "membership", None) is None:
            return False
        refuse_automation_only_token(request, view)
        if request.method not in readonly.SAFE_METHODS:
            refused = readonly.refusal(request.tenant)
            # A viewset may name actions that stay open (e.g. revoking a token): they end access, not grant it.
            open_actions = getattr(view, "writable_when_read_only", ())
            if refused is not None and getattr(view, "action", None) not in open_actions:
                raise exceptions.PermissionDenied(refused.detail, code=refused.code)
        return True


class IsTenantAdmin(IsTenantMember):
    """The caller is an owner or admin of the active tenant."""

    message = "This needs a tenant admin."
    code = "admin_required"

    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and request.membership.role in ADMIN_ROLES


class IsOperator(BasePermission):
    """The caller acts with operator powers (tenants.twofactor.operator_powers); anyone else sees no such thing.

    Operators need no tenant membership, so this does not build on IsTenantMember; it keeps its token rule.
    """

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if not hasattr(view, request.method.lower()):
            return True  # a method the route does not take: DRF answers 405, and nothing is said of the row
        refuse_automation_only_token(request, view)
        if not is_operator(request):
            raise exceptions.NotFound()
        return True
