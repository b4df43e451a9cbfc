"""The page-side twin of the tenant-scoped viewset: one mixin scopes every portal page."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import redirect


class TenantPageMixin(LoginRequiredMixin):
    """Require a membership in the active tenant (and admin rights when asked)."""

    admin_required = False

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if request.membership is None:
            return redirect("tenants:create")
        if self.admin_required and not request.membership.is_admin:
            raise PermissionDenied("This page is for tenant admins.")
        return super().dispatch(request, *args, **kwargs)

    def scoped(self, queryset: QuerySet) -> QuerySet:
        """Restrict any tenant-owned queryset to the active tenant."""
        return queryset.for_tenant(self.request.tenant)
