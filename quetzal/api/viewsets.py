"""The tenant-scoped base viewset every API resource builds on."""

from __future__ import annotations

from rest_framework import viewsets

from quetzal.api.permissions import IsTenantAdmin, IsTenantMember
from tenants.resolution import resolve_api_tenant


class TenantScopedMixin:
    """Resolve the active tenant after authentication and scope every query to it."""

    # Actions that only tenant admins may call; the rest need membership.
    admin_actions: frozenset[str] = frozenset()
    admin_only: bool = False

    def perform_authentication(self, request) -> None:
        super().perform_authentication(request)
        resolve_api_tenant(request)

    def get_permissions(self):
        if self.admin_only or getattr(self, "action", None) in self.admin_actions:
            return [IsTenantAdmin()]
        return [IsTenantMember()]

    def get_queryset(self):
        # The one place API reads are filtered by tenant: another tenant's row is a 404.
        return super().get_queryset().for_tenant(self.request.tenant)


class TenantScopedViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    """A GenericViewSet whose queryset and permissions follow the active tenant."""
