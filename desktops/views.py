"""Member portal pages: the launcher, "my desktops", one desktop's page, and console settings."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views import View

from desktops.choices import DesktopState, OperationKind
from desktops.forms import ConsolePreferencesForm
from desktops.models import Desktop, DesktopTemplate, Operation, Pool
from desktops.services import files, preferences, sizes
from desktops.services.idle import idle_action, idle_deadline, session_deadline, warning_window
from desktops.state import ACTIONS
from quetzal.errors import ServiceError
from tenants.mixins import TenantPageMixin
from tenants.services.audit import client_ip

# How many past operations a desktop's page lists.
HISTORY_SHOWN = 20


def decorate(desktop: Desktop) -> Desktop:
    """Attach what the card shows: the idle/session deadlines and the operation in flight, if any."""
    running = desktop.state == DesktopState.RUNNING
    desktop.idle_at = idle_deadline(desktop) if running else None
    desktop.idle_verb = idle_action(desktop) if desktop.idle_at else ""
    # When the "Still working?" warning shows (the page shows it at that moment without a reload).
    if desktop.idle_at:
        desktop.idle_warn_at = desktop.idle_at - warning_window(desktop)
        desktop.idle_warning = desktop.idle_warn_at <= timezone.now()
    desktop.session_ends_at = session_deadline(desktop) if running else None
    in_flight = getattr(desktop, "in_flight", None)
    desktop.operation = in_flight[0] if in_flight else None
    return desktop


def _same_shape(one: sizes.Size, other: sizes.Size) -> bool:
    return (one.vcpus, one.memory_mib, one.disk_gib) == (other.vcpus, other.memory_mib, other.disk_gib)


class DesktopPageMixin(TenantPageMixin):
    """A desktop page is for its owner, or for the tenant's admins."""

    def desktops(self) -> QuerySet:
        desktops = self.scoped(
            Desktop.objects.alive()
            .select_related("template", "tenant", "pool", "user", "host")
            .prefetch_related(
                "snapshots",
                Prefetch("operations", queryset=Operation.objects.in_flight(), to_attr="in_flight"),
            )
        )
        if not self.request.membership.is_admin:
            desktops = desktops.owned_by(self.request.user)
        return desktops


class PortalView(DesktopPageMixin, View):
    """A card per template to launch, and the person's desktops with their actions."""

    def get(self, request: HttpRequest) -> HttpResponse:
        desktops = [decorate(d) for d in self.desktops().owned_by(request.user)]
        templates = list(
            DesktopTemplate.objects.launchable_by(request.tenant).select_related("image").prefetch_related("sizes")
        )
        # Launching a template the person already has resumes that desktop: the button says so.
        held = {d.template_id: d.state for d in sorted(desktops, key=lambda d: d.created_at)}
        pooled = set(Pool.objects.for_tenant(request.tenant).filter(enabled=True).values_list("template_id", flat=True))
        personal = {d.template_id for d in desktops if d.kind == "personal"}
        for template in templates:
            template.held_state = held.get(template.pk, "")
            template.size_options = sizes.options(template)
            template.size_bounds = sizes.bounds(template)
            # What the launch will hand out decides what is kept: the card says it as it is.
            template.launch_kind = "pooled" if template.pk in pooled and template.pk not in personal else "personal"
        context = {
            "templates": templates,
            "desktops": desktops,
            "may_choose_size": sizes.may_choose(tenant=request.tenant, actor=request.user),
            "billing_enabled": settings.BILLING_ENABLED,
            "currency": getattr(settings, "BILLING_CURRENCY", "usd").upper(),
            "running_limit": request.tenant.max_running_per_user,
            "running_count": sum(1 for d in desktops if d.state == DesktopState.RUNNING),
        }
        return render(request, "desktops/portal.html", context)


class DesktopCardView(DesktopPageMixin, View):
    """One desktop's card, re-rendered by the portal when its state changes."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        desktop = decorate(get_object_or_404(self.desktops(), pk=pk))
        return render(request, "desktops/partials/desktop_card.html", {"d": desktop})


class DesktopDetailView(DesktopPageMixin, View):
    """One desktop: state, live usage, snapshots and the history of its operations."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        desktop = decorate(get_object_or_404(self.desktops(), pk=pk))
        size = sizes.of_desktop(desktop)
        options = sizes.options(desktop.template)
        context = {
            "d": desktop,
            "history": desktop.operations.select_related("actor")[:HISTORY_SHOWN],
            "admin_view": desktop.user_id != request.user.pk,
            "size": size,
            "size_price": sizes.price_per_hour(desktop.template, size),
            "size_bounds": sizes.bounds(desktop.template),
            # Disks never shrink: the sizes it may move to keep at least its disk.
            "resize_options": [o for o in options if o["size"].disk_gib >= size.disk_gib],
            "size_is_custom": not any(_same_shape(o["size"], size) for o in options),
            "may_choose_size": sizes.may_choose(tenant=request.tenant, actor=request.user),
            "resizable": desktop.state in ACTIONS[OperationKind.RESIZE].sources and desktop.operation is None,
            "compute_locked": desktop.state != DesktopState.STOPPED,
            "billing_enabled": settings.BILLING_ENABLED,
            "currency": getattr(settings, "BILLING_CURRENCY", "usd").upper(),
        }
        return render(request, "desktops/desktop_detail.html", context)


class SettingsView(TenantPageMixin, View):
    """The person's console preferences, next to the security and API token tabs."""

    def context(self, form: ConsolePreferencesForm) -> dict:
        return {"form": form, "current": preferences.console_preferences(self.request.user)}

    def get(self, request: HttpRequest) -> HttpResponse:
        current = preferences.console_preferences(request.user)
        form = ConsolePreferencesForm(initial={"scaling": current.scaling, "quality": current.quality})
        return render(request, "desktops/settings.html", self.context(form))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = ConsolePreferencesForm(request.POST)
        if not form.is_valid():
            return render(request, "desktops/settings.html", self.context(form), status=400)
        try:
            preferences.set_console_preferences(user=request.user, ip=client_ip(request), **form.cleaned_data)
        except ServiceError as error:
            form.add_error(None, error.detail)
            return render(request, "desktops/settings.html", self.context(form), status=error.status)
        messages.success(request, gettext("Console preferences saved; they apply the next time you open a console."))
        return redirect("portal:settings")


class FilesView(TenantPageMixin, View):
    """The person's home folder in the browser: browse, upload (drag and drop), download, organise."""

    def get(self, request: HttpRequest) -> HttpResponse:
        context: dict = {"home": None, "error": None}
        try:
            home = files.open_home(tenant=request.tenant, actor=request.user)
            context["home"] = home
            context["desktop"] = home.attached_to
        except ServiceError as error:
            context["error"] = error.detail
        return render(request, "desktops/files.html", context)
