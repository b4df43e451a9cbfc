"""Operators' admin for billing: accounts, the ledger (read-only, CSV), reports, invoices, prices."""

from __future__ import annotations

import csv
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.models import BillingAccount, Invoice, PriceChange, StripeCatalog, UsageInterval, UsageReport, WebhookEvent
from billing.services import accounts, invoices, prices, usage
from quetzal.admin import ReadOnlyAdmin
from quetzal.errors import ServiceError
from quetzal.forms import ModelForm


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "exempt",
        "stripe_customer_id",
        "subscription_status",
        "payment_method_last4",
        "arrears_since",
        "grace_until",
        "suspended_by_billing",
    ]
    list_filter = ["exempt", "suspended_by_billing", "subscription_status"]
    search_fields = ["tenant__name", "tenant__slug", "stripe_customer_id"]
    readonly_fields = [f.name for f in BillingAccount._meta.fields]
    actions = ["make_customer", "exempt", "charge", "refresh_invoices"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _each(self, request, queryset, action, done: str) -> None:
        count = 0
        for account in queryset.select_related("tenant"):
            try:
                action(account)
                count += 1
            except ServiceError as error:
                self.message_user(request, f"{account.tenant}: {error.detail}", messages.ERROR)
        if count:
            self.message_user(request, f"{done}: {count}.", messages.SUCCESS)

    @admin.action(description="Create the Stripe customer and subscription")
    def make_customer(self, request, queryset) -> None:
        self._each(request, queryset, lambda a: accounts.ensure_account(tenant=a.tenant), "Customers ready")

    @admin.action(description="Record usage without charging (exempt)")
    def exempt(self, request, queryset) -> None:
        self._each(
            request, queryset, lambda a: accounts.set_exempt(account=a, exempt=True, actor=request.user), "Exempt"
        )

    @admin.action(description="Charge for usage again")
    def charge(self, request, queryset) -> None:
        self._each(
            request, queryset, lambda a: accounts.set_exempt(account=a, exempt=False, actor=request.user), "Charged"
        )

    @admin.action(description="Refresh invoices from Stripe")
    def refresh_invoices(self, request, queryset) -> None:
        self._each(request, queryset, lambda a: invoices.sync_invoices(account=a), "Refreshed")


@admin.register(UsageInterval)
class UsageIntervalAdmin(ReadOnlyAdmin):
    list_display = [
        "started_at",
        "ended_at",
        "tenant",
        "desktop_name",
        "person_email",
        "template_name",
        "seconds",
        "price_per_hour",
        "amount",
        "ended_by",
        "reported_at",
    ]
    list_filter = ["ended_by", "currency", ("reported_at", admin.EmptyFieldListFilter)]
    search_fields = ["tenant__slug", "desktop_name", "person_email", "template_name", "uuid"]
    date_hierarchy = "started_at"
    actions = ["export_csv"]

    @admin.action(description="Export the selected rows as CSV")
    def export_csv(self, request, queryset) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="quetzal-usage.csv"'
        writer = csv.writer(response)
        writer.writerow(usage.CSV_COLUMNS)
        for row in queryset.select_related("tenant").order_by("started_at"):
            writer.writerow(usage.csv_row(row))
        return response


@admin.register(UsageReport)
class UsageReportAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "day", "seconds", "amount", "value", "sent_at", "duplicate", "attempts"]
    list_filter = [("sent_at", admin.EmptyFieldListFilter), "duplicate"]
    search_fields = ["tenant__slug", "uuid", "last_error"]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["issued_at", "tenant", "number", "stripe_id", "status", "payment_failed", "amount_due", "currency"]
    list_filter = ["status", "payment_failed"]
    search_fields = ["tenant__slug", "stripe_id", "number"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "type", "stripe_event_id", "tenant", "outcome"]
    list_filter = ["type"]
    search_fields = ["stripe_event_id", "object_id"]


@admin.register(StripeCatalog)
class StripeCatalogAdmin(ReadOnlyAdmin):
    list_display = ["event_name", "currency", "meter_id", "price_id", "created_at"]


class PriceChangeForm(ModelForm):
    """Empty `effective_at` means now; a time in the past is refused (never retroactive)."""

    effective_at = forms.DateTimeField(
        required=False, help_text=_("Leave empty for now. Never in the past."), label=_("Effective at")
    )

    class Meta:
        model = PriceChange
        fields = ["template", "price_per_hour", "effective_at", "note"]

    def clean_effective_at(self):
        value = self.cleaned_data.get("effective_at")
        if value is not None and value < timezone.now() - timedelta(seconds=1):
            raise forms.ValidationError(gettext("A price change applies from its time on: choose now or a later time."))
        return value


@admin.register(PriceChange)
class PriceChangeAdmin(admin.ModelAdmin):
    """New prices go through the service: from their time on, never into the past."""

    form = PriceChangeForm
    list_display = ["template", "price_per_hour", "effective_at", "created_by", "created_at", "note"]
    list_filter = ["template"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        effective = form.cleaned_data.get("effective_at")
        saved = prices.change_price(
            template=obj.template,
            price_per_hour=obj.price_per_hour,
            # A time that passed while the form was being sent means now.
            effective_at=effective if effective and effective > timezone.now() else None,
            actor=request.user,
            note=obj.note,
        )
        obj.pk, obj.effective_at = saved.pk, saved.effective_at
