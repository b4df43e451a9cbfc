"""Tenant admin (manage) pages: the dashboard, every desktop with bulk actions, pools, private templates."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views import View

from desktops.choices import DesktopKind, DesktopState, Visibility
from desktops.filters import AdminDesktopFilterSet
from desktops.manage.forms import PoolForm, TemplateForm
from desktops.models import Desktop, DesktopTemplate, Operation, Pool
from desktops.services import bulk, dashboard, network, pools, readiness, templates
from desktops.views import decorate
from quetzal.errors import ServiceError
from tenants.mixins import TenantPageMixin
from tenants.models import User
from tenants.redirects import safe_next
from tenants.services.audit import client_ip

DESKTOPS_SHOWN = 500


class AdminPage(TenantPageMixin):
    """Every manage page is for tenant admins (owners and admins)."""

    admin_required = True


class DashboardView(AdminPage, View):
    """People, desktops, idle deadlines, quota use, room per template, and desktop-hours per day."""

    template_name = "desktops/manage/dashboard.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        figures = dashboard.build(request.tenant)
        context = {
            "dash": figures,
            "chart": dashboard.hours_chart(figures.hours),
            "ready_stats": readiness.ready_stats(tenant=request.tenant),
        }
        return render(request, self.template_name, context)


class DashboardFiguresView(DashboardView):
    """The dashboard's figures alone, which the page re-fetches every few seconds."""

    template_name = "desktops/manage/partials/figures.html"


class DesktopsView(AdminPage, View):
    """Every desktop of the tenant, filtered by state, person or template, with the bulk actions."""

    def filtered(self, request: HttpRequest) -> AdminDesktopFilterSet:
        desktops = self.scoped(
            Desktop.objects.alive()
            .select_related("user", "template", "host", "tenant", "pool")
            # The operation in flight, so the list shows a resize (or any action) under way.
            .prefetch_related(Prefetch("operations", queryset=Operation.objects.in_flight(), to_attr="in_flight"))
        )
        # A filter that does not parse is left out rather than failing the page.
        return AdminDesktopFilterSet(request.GET, queryset=desktops.order_by("user__email", "name", "pk"))

    def get(self, request: HttpRequest) -> HttpResponse:
        filters = self.filtered(request)
        tenant_desktops = self.scoped(Desktop.objects.alive())
        shown = [decorate(d) for d in filters.qs[:DESKTOPS_SHOWN]]
        where = network.addresses(d.pk for d in shown)
        for desktop in shown:
            desktop.address = where.get(desktop.pk)
        context = {
            "desktops": shown,
            "states": [(s.value, s.label) for s in DesktopState if s != DesktopState.DELETED],
            "people": User.objects.filter(desktops__in=tenant_desktops).distinct().order_by("email"),
            "templates": DesktopTemplate.objects.filter(desktops__in=tenant_desktops).distinct(),
            "filters": filters.entered(),
            "pooled": DesktopKind.POOLED,
        }
        return render(request, "desktops/manage/desktops.html", context)


class BulkActionView(AdminPage, View):
    """ "Snapshot all desktops" and "stop all idle"."""

    def post(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action")
        runs = {"snapshot_all": (bulk.snapshot_all, "Snapshot"), "stop_idle": (bulk.stop_all_idle, "Stop")}
        if action not in runs:
            messages.error(request, gettext("Unknown bulk action."))
            return redirect("manage:desktops")
        run, verb = runs[action]
        result = run(tenant=request.tenant, actor=request.user, ip=client_ip(request))
        messages.success(request, result.summary(verb))
        for desktop, reason in result.skipped[:5]:
            messages.info(
                request,
                gettext("%(name)s (%(value)s): skipped, %(reason)s.")
                % {"name": desktop.name, "value": desktop.user or "pool", "reason": reason},
            )
        return redirect(safe_next(request, "manage:desktops"))


class PoolsView(AdminPage, View):
    """Warm pools per template with their current warm count; create one."""

    def context(self, form: PoolForm) -> dict:
        return {"pools": self.scoped(Pool.objects.select_related("template")), "form": form}

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "desktops/manage/pools.html", self.context(PoolForm(tenant=request.tenant)))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PoolForm(request.POST, tenant=request.tenant)
        return save_pool_form(self, request, form, pool=None, template_name="desktops/manage/pools.html")


def save_pool_form(
    view: AdminPage, request: HttpRequest, form: PoolForm, *, pool: Pool | None, template_name: str
) -> HttpResponse:
    """Validate, save through the pools service, and answer the page (or the form with its errors)."""
    if form.is_valid():
        # On edit only what changed is written (the template never changes); an empty name keeps the default.
        fields = form.changed_data if pool else form.Meta.fields
        values = {key: form.cleaned_data[key] for key in fields if key != "template" or pool is None}
        if not values.get("name", True):
            values.pop("name")
        try:
            saved = pools.save_pool(tenant=request.tenant, actor=request.user, values=values, pool=pool)
        except ValidationError as error:
            form.add_error(None, "; ".join(error.messages))
        except ServiceError as error:
            form.add_error(None, error.detail)
        else:
            messages.success(
                request, gettext("Pool %(name)s saved; it refills in the background.") % {"name": saved.name}
            )
            return redirect("manage:pools")
    return render(request, template_name, view.context(form), status=400)


class PoolEditView(AdminPage, View):
    """Change a pool's sizes, warm state and idle action."""

    def pool(self, pk: int) -> Pool:
        return get_object_or_404(self.scoped(Pool.objects.select_related("template")), pk=pk)

    def context(self, form: PoolForm) -> dict:
        return {"form": form, "pool": form.instance}

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        pool = self.pool(pk)
        form = PoolForm(instance=pool, tenant=request.tenant)
        return render(request, "desktops/manage/pool_edit.html", self.context(form))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        pool = self.pool(pk)
        form = PoolForm(request.POST, instance=pool, tenant=request.tenant)
        return save_pool_form(self, request, form, pool=pool, template_name="desktops/manage/pool_edit.html")


class PoolDeleteView(AdminPage, View):
    """Remove a pool; its unassigned desktops are recycled."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        pool = get_object_or_404(self.scoped(Pool.objects.all()), pk=pk)
        name = pool.name
        pools.delete_pool(pool=pool, actor=request.user)
        messages.success(
            request, gettext("Pool %(name)s removed; its unassigned desktops are being deleted.") % {"name": name}
        )
        return redirect("manage:pools")


class TemplatesView(AdminPage, View):
    """The tenant's private templates, and the public ones its people may also launch."""

    def get(self, request: HttpRequest) -> HttpResponse:
        context = {
            "private": self.scoped(
                DesktopTemplate.objects.select_related("image").prefetch_related("sizes").order_by("name")
            ),
            "public": DesktopTemplate.objects.filter(visibility=Visibility.PUBLIC, enabled=True).order_by("name"),
        }
        return render(request, "desktops/manage/templates.html", context)


class TemplateEditView(AdminPage, View):
    """Create (no pk) or change one of the tenant's own templates."""

    def template(self, pk: int | None) -> DesktopTemplate:
        if pk is None:
            return DesktopTemplate(tenant=self.request.tenant, visibility=Visibility.TENANT)
        return get_object_or_404(self.scoped(DesktopTemplate.objects.all()), pk=pk)

    def render_form(self, request: HttpRequest, form: TemplateForm, status: int = 200) -> HttpResponse:
        return render(request, "desktops/manage/template_edit.html", {"form": form}, status=status)

    def get(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        return self.render_form(request, TemplateForm(instance=self.template(pk)))

    def post(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        existing = self.template(pk)
        form = TemplateForm(request.POST, instance=existing)
        if not form.is_valid():
            return self.render_form(request, form, status=400)
        try:
            saved = templates.save_private_template(
                tenant=request.tenant,
                actor=request.user,
                values=form.service_values(),
                template=existing if pk is not None else None,
                ip=client_ip(request),
            )
        except ServiceError as error:
            form.add_error(None, error.detail)
            return self.render_form(request, form, status=error.status)
        messages.success(request, gettext("Template %(name)s saved.") % {"name": saved.name})
        return redirect("manage:templates")
