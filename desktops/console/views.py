"""Console pages: the desktop in the browser, console sessions, and recording replay (tenant admins)."""

from __future__ import annotations

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views import View

from desktops.console import recordings
from desktops.console.filters import ConsoleFilterSet
from desktops.console.models import ConsoleSession, Recording
from desktops.models import Desktop
from desktops.services import automation, idle, ramp_down
from desktops.services.preferences import console_preferences
from quetzal.errors import ServiceError
from tenants.mixins import TenantPageMixin
from tenants.models import User
from tenants.services.audit import client_ip

SESSIONS_SHOWN = 200


class ConsolePageView(TenantPageMixin, View):
    """noVNC in the whole window, for the desktop's owner (or an admin when the tenant allows it)."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        desktops = self.scoped(Desktop.objects.alive().select_related("user", "template", "tenant", "pool"))
        if not request.membership.is_admin:
            desktops = desktops.owned_by(request.user)
        desktop = get_object_or_404(desktops, pk=pk)
        tenant = request.tenant
        context = {
            "desktop": desktop,
            "admin_view": desktop.user_id != request.user.pk,
            "recorded": tenant.recording_enabled,
            # What the page offers; the proxy enforces the same policy whatever the page does.
            "sound": desktop.template.sound and tenant.audio_enabled,
            "clipboard_to_desktop": tenant.clipboard_to_desktop,
            "clipboard_from_desktop": tenant.clipboard_from_desktop,
            "prefs": console_preferences(request.user).for_console(),
            # The "Still working?" banner: the page learns the deadline from the API as input moves it.
            "idle_policy": idle.has_idle_policy(desktop),
            "idle_verb": idle.idle_action(desktop),
            "idle_warn_seconds": int(idle.warning_window(desktop).total_seconds()),
            # "Stopped at 18:30 for the evening": the pool's plan stops held desktops, after notice.
            "stop_notices": ramp_down.announces(desktop),
            # "A script is driving": shown from the page's first paint, then followed by a small poller.
            "automation_allowed": request.tenant.allow_automation,
            "automation_driven": automation.is_driven(desktop),
            "automation_driven_for_s": automation.DRIVEN_FOR_S,
        }
        return render(request, "desktops/console.html", context)


class ConsoleSessionsView(TenantPageMixin, View):
    """Tenant admins: who opened which console, from where, for how long, and its recording."""

    admin_required = True

    def get(self, request: HttpRequest) -> HttpResponse:
        # A filter that does not parse is left out rather than failing the page.
        filters = ConsoleFilterSet(
            request.GET, queryset=self.scoped(ConsoleSession.objects.select_related("desktop", "user", "recording"))
        )
        context = {
            "sessions": filters.qs[:SESSIONS_SHOWN],
            "desktops": self.scoped(Desktop.objects.all()).only("pk", "name").order_by("name"),
            "people": User.objects.filter(memberships__tenant=request.tenant).order_by("email"),
            "desktop_filter": filters.entered()["desktop"],
            "person_filter": filters.entered()["person"],
            "recording_enabled": request.tenant.recording_enabled,
            "retention_days": request.tenant.recording_retention_days,
        }
        return render(request, "desktops/console_sessions.html", context)


class RecordingReplayView(TenantPageMixin, View):
    """Tenant admins: replay a recorded session in noVNC."""

    admin_required = True

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        recording = get_object_or_404(
            self.scoped(Recording.objects.select_related("desktop", "user", "session")), pk=pk
        )
        return render(request, "desktops/recording_replay.html", {"recording": recording})


class RecordingDataView(TenantPageMixin, View):
    """Tenant admins: the recording file the replay page streams into noVNC."""

    admin_required = True

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        recording = get_object_or_404(self.scoped(Recording.objects.select_related("desktop", "tenant")), pk=pk)
        try:
            handle = recordings.open_for_replay(recording=recording, actor=request.user, ip=client_ip(request))
        except ServiceError as error:
            return JsonResponse({"code": error.code, "detail": error.detail}, status=error.status)
        response = FileResponse(handle, content_type="application/octet-stream")
        response["Cache-Control"] = "private, no-store"
        return response
