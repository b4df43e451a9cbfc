"""Billing pages: the tenant admin's Billing page, Checkout and portal, and operators' usage."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View

from billing import conf
from billing.filters import PeriodForm
from billing.models import BillingAccount, Invoice
from billing.periods import Period, month_period
from billing.services import accounts, estimate, usage
from quetzal.errors import ServiceError
from tenants.mixins import TenantPageMixin
from tenants.services.audit import client_ip


class BillingEnabledMixin:
    """With billing off these pages do not exist."""

    def dispatch(self, request, *args, **kwargs):
        if not conf.billing_enabled():
            raise Http404("Billing is not enabled.")
        return super().dispatch(request, *args, **kwargs)


def _period(request: HttpRequest) -> Period:
    form = PeriodForm(request.GET)
    if not form.is_valid():
        raise Http404("No such period.")
    return form.cleaned_data["period"] or month_period(timezone.now())


def _csv_response(filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class TenantBillingView(TenantPageMixin, View):
    """Tenant admins: this period's hours and cost per template and person, a daily chart, invoices.

    With billing off there is no ledger and no Stripe: the same figures come from the desktops' runs,
    priced at the operator's template prices, and the page says that nothing is charged.
    """

    admin_required = True

    def get(self, request: HttpRequest) -> HttpResponse:
        period = _period(request)
        billing_on = conf.billing_enabled()
        if billing_on:
            summary = usage.summarize(tenant=request.tenant, period=period)
        else:
            summary = estimate.summarize(tenant=request.tenant, period=period)
        context = {
            "billing_on": billing_on,
            "period": period,
            "previous_period": month_period(period.start - timedelta(days=1)).label,
            "next_period": month_period(period.end).label if period.end <= timezone.now() else None,
            "summary": summary,
            "chart": summary.chart(),
            "account": BillingAccount.objects.for_tenant(request.tenant).first() if billing_on else None,
            "invoices": self.scoped(Invoice.objects.all())[:24] if billing_on else [],
            "currency": summary.currency.upper(),
        }
        return render(request, "billing/tenant.html", context)


class TenantUsageCsvView(TenantPageMixin, View):
    """Tenant admins: the period's ledger rows as CSV (with billing off: the runs, priced as estimated)."""

    admin_required = True

    def get(self, request: HttpRequest) -> HttpResponse:
        period = _period(request)
        response = _csv_response(f"quetzal-usage-{request.tenant.slug}-{period.label}.csv")
        if conf.billing_enabled():
            usage.write_csv(response, period=period, tenant=request.tenant)
        else:
            estimate.write_csv(response, period=period, tenant=request.tenant)
        return response


class CheckoutView(BillingEnabledMixin, TenantPageMixin, View):
    """Tenant admins: off to Stripe Checkout to save a payment method."""

    admin_required = True

    def post(self, request: HttpRequest) -> HttpResponse:
        back = request.build_absolute_uri(reverse("billing:tenant"))
        try:
            url = accounts.start_checkout(
                tenant=request.tenant,
                actor=request.user,
                success_url=f"{back}?checkout=done",
                cancel_url=f"{back}?checkout=cancelled",
                ip=client_ip(request),
            )
        except ServiceError as error:
            messages.error(request, error.detail)
            return redirect("billing:tenant")
        return redirect(url)


class PortalView(BillingEnabledMixin, TenantPageMixin, View):
    """Tenant admins: off to the Stripe customer portal."""

    admin_required = True

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            url = accounts.open_portal(
                tenant=request.tenant,
                actor=request.user,
                return_url=request.build_absolute_uri(reverse("billing:tenant")),
                ip=client_ip(request),
            )
        except ServiceError as error:
            messages.error(request, error.detail)
            return redirect("billing:tenant")
        return redirect(url)


@method_decorator(staff_member_required, name="dispatch")
class OperatorUsageView(BillingEnabledMixin, View):
    """Operators: every tenant's usage in a period, with standing and a CSV export."""

    def get(self, request: HttpRequest) -> HttpResponse:
        period = _period(request)
        totals = usage.tenant_totals(period=period)
        standing = {a.tenant_id: a for a in BillingAccount.objects.filter(tenant_id__in=[t.pk for t, _, _ in totals])}
        rows = [(tenant, line, running, standing.get(tenant.pk)) for tenant, line, running in totals]
        context = {"period": period, "rows": rows, "currency": conf.currency().upper()}
        return render(request, "billing/operator.html", context)


@method_decorator(staff_member_required, name="dispatch")
class OperatorUsageCsvView(BillingEnabledMixin, View):
    """Operators: every tenant's ledger rows of a period as CSV."""

    def get(self, request: HttpRequest) -> HttpResponse:
        period = _period(request)
        response = _csv_response(f"quetzal-usage-all-{period.label}.csv")
        usage.write_csv(response, period=period)
        return response
