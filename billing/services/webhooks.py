"""Stripe webhooks: verified over the raw body, processed once, and never trusting event order.

Each event's object is fetched again from Stripe and its current state applied, so an old event
arriving late cannot undo a newer one. The event row and the effect commit together: a failure
rolls both back and Stripe's redelivery is processed as if new.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import stripe_api
from billing.models import BillingAccount, WebhookEvent
from billing.services import accounts, dunning, invoices

ACCOUNT_EVENTS = frozenset(
    {
        "customer.updated",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "payment_method.attached",
        "payment_method.detached",
        "payment_method.updated",
    }
)


def handle(*, payload: bytes, signature: str) -> str:
    """Verify and process one delivery; returns what was done (BadSignature when it does not verify)."""
    event = stripe_api.verify_webhook(payload, signature)
    return process_event(event)


def process_event(event: dict[str, Any]) -> str:
    """Apply one verified event exactly once."""
    obj = (event.get("data") or {}).get("object") or {}
    created = event.get("created")
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = WebhookEvent.objects.create(
                    stripe_event_id=event["id"],
                    type=event["type"][:100],
                    object_id=str(obj.get("id") or "")[:255],
                    stripe_created=datetime.fromtimestamp(int(created), tz=UTC) if created else None,
                )
        except IntegrityError:
            return "already processed"
        outcome, tenant_id = _apply(event["type"], obj, record.stripe_created or timezone.now())
        record.outcome, record.tenant_id = outcome[:300], tenant_id
        record.save(update_fields=["outcome", "tenant"])
    return outcome


def _account(customer_id: str) -> BillingAccount | None:
    if not customer_id:
        return None
    return (
        BillingAccount.objects.select_for_update()
        .select_related("tenant")
        .filter(stripe_customer_id=customer_id)
        .first()
    )


def _customer_of(obj: dict[str, Any]) -> str:
    if obj.get("object") == "customer":
        return obj.get("id") or ""
    return invoices.invoice_customer(obj)


def _apply(event_type: str, obj: dict[str, Any], at: datetime) -> tuple[str, int | None]:
    if event_type.startswith("invoice.") and obj.get("id"):
        # Locked before fetching, so one tenant's events apply one at a time, each from a fresh copy.
        account = _account(invoices.invoice_customer(obj))
        if account is None:
            return "ignored: not one of our customers", None
        # Re-fetched: the invoice as it is now, whatever order the events came in.
        data = stripe_api.retrieve_invoice(obj["id"])
        if invoices.invoice_customer(data) != account.stripe_customer_id:
            return "ignored: the invoice belongs to another customer", None
        invoice = invoices.store_invoice(account=account, data=data)
        standing = dunning.recompute_standing(account=account, at=at)
        return f"invoice {invoice.stripe_id} {invoice.status}; {standing}", account.tenant_id
    if event_type == "checkout.session.completed" and obj.get("id"):
        account = _account(_customer_of(obj))
        if account is None:
            return "ignored: not one of our customers", None
        return accounts.complete_checkout(account=account, session_id=obj["id"]), account.tenant_id
    if event_type in ACCOUNT_EVENTS:
        account = _account(_customer_of(obj))
        if account is None:
            return "ignored: not one of our customers", None
        accounts.refresh_payment_method(account=account)
        accounts.refresh_subscription(account=account)
        return "account refreshed", account.tenant_id
    return "ignored: not an event Quetzal acts on", None
