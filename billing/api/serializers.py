"""Billing API shapes: ledger rows and invoices, read-only."""

from __future__ import annotations

from rest_framework import serializers

from billing.models import Invoice, UsageInterval
from quetzal.api.serializers import ModelSerializer


class UsageIntervalSerializer(ModelSerializer):
    hours = serializers.DecimalField(max_digits=16, decimal_places=6, read_only=True, allow_null=True)

    class Meta:
        model = UsageInterval
        fields = [
            "id",
            "uuid",
            "desktop",
            "desktop_name",
            "person_email",
            "template",
            "template_name",
            "price_per_hour",
            "currency",
            "started_at",
            "ended_at",
            "seconds",
            "hours",
            "amount",
            "ended_by",
            "reported_at",
        ]
        read_only_fields = fields


class InvoiceSerializer(ModelSerializer):
    overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "stripe_id",
            "number",
            "status",
            "overdue",
            "currency",
            "amount_due",
            "amount_paid",
            "amount_remaining",
            "period_start",
            "period_end",
            "issued_at",
            "paid_at",
            "hosted_invoice_url",
            "invoice_pdf",
        ]
        read_only_fields = fields
