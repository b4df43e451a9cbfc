"""Stripe invoices copied locally for listing; each copy is replaced by what Stripe says now."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from billing import conf, stripe_api
from billing.choices import FINAL_INVOICE_STATUSES, InvoiceStatus
from billing.models import BillingAccount, Invoice


def _money(minor: Any, currency: str) -> Decimal:
    return (Decimal(int(minor or 0)) / Decimal(conf.minor_units(currency))).quantize(Decimal("0.01"))


def _moment(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def invoice_customer(data: dict[str, Any]) -> str:
    customer = data.get("customer")
    return customer.get("id", "") if isinstance(customer, dict) else (customer or "")


def store_invoice(*, account: BillingAccount, data: dict[str, Any]) -> Invoice:
    """Write Stripe's current invoice; a stale copy never moves a paid or void invoice back."""
    status = data.get("status") or InvoiceStatus.DRAFT
    if status not in InvoiceStatus.values:
        status = InvoiceStatus.OPEN
    currency = (data.get("currency") or account.currency).lower()
    transitions = data.get("status_transitions") or {}
    values = {
        "tenant_id": account.tenant_id,
        "account": account,
        "number": data.get("number") or "",
        "status": status,
        "currency": currency,
        "amount_due": _money(data.get("amount_due"), currency),
        "amount_paid": _money(data.get("amount_paid"), currency),
        "amount_remaining": _money(data.get("amount_remaining", data.get("amount_due")), currency)
        if status != InvoiceStatus.PAID
        else Decimal("0.00"),
        # Open after Stripe tried to collect it: a failed payment the customer owes.
        "payment_failed": status == InvoiceStatus.OPEN and bool(data.get("attempted")),
        "period_start": _moment(data.get("period_start")),
        "period_end": _moment(data.get("period_end")),
        "issued_at": _moment(transitions.get("finalized_at") or data.get("created") or data.get("date")),
        "paid_at": _moment(transitions.get("paid_at")),
        "hosted_invoice_url": data.get("hosted_invoice_url") or "",
        "invoice_pdf": data.get("invoice_pdf") or "",
    }
    with transaction.atomic():
        existing = Invoice.objects.select_for_update().filter(stripe_id=data["id"]).first()
        if existing is None:
            return Invoice.objects.create(stripe_id=data["id"], **values)
        if existing.status in FINAL_INVOICE_STATUSES and status not in FINAL_INVOICE_STATUSES:
            return existing
        for name, value in values.items():
            setattr(existing, name, value)
        existing.save()
        return existing


def sync_invoices(*, account: BillingAccount) -> int:
    """Fetch every invoice of the account's customer (the daily catch-up behind the webhooks)."""
    if not account.stripe_customer_id:
        return 0
    found = stripe_api.list_invoices(account.stripe_customer_id)
    for data in found:
        store_invoice(account=account, data=data)
    return len(found)
