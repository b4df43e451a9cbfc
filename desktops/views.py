"""Portal pages: the launcher and "my desktops"."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import View

from desktops.models import Desktop, DesktopTemplate
from desktops.services.idle import idle_deadline
from tenants.mixins import TenantPageMixin


class PortalView(TenantPageMixin, View):
    """A card per template to launch, and the person's desktops with their actions."""

    def get(self, request: HttpRequest) -> HttpResponse:
        desktops = list(
            self.scoped(
                Desktop.objects.alive().owned_by(request.user).select_related("template").prefetch_related("snapshots")
            )
        )
        for desktop in desktops:
            desktop.idle_at = idle_deadline(desktop) if desktop.state == "running" else None
        context = {
            "templates": DesktopTemplate.objects.for_tenant(request.tenant).select_related("image"),
            "desktops": desktops,
            "billing_enabled": settings.BILLING_ENABLED,
        }
        return render(request, "desktops/portal.html", context)
