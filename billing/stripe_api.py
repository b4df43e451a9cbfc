"""Every call Quetzal makes to Stripe, and nothing else: the one module that imports the SDK.

Functions take plain values and return plain dicts. Connection failures, timeouts, rate limits and
Stripe's own 5xx become StripeUnavailable (retry later); other refusals become StripeRejected. With
billing off, every function refuses before any request is made.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import stripe
from django.utils.translation import gettext
from stripe.params import CustomerCreateParams

from billing import conf
from billing.errors import BadSignature, BillingDisabled, StripeRejected, StripeUnavailable

# Stripe's answer to a meter event whose identifier it has already recorded (400, not retryable).
_DUPLICATE_CODES = frozenset({"duplicate_meter_event", "resource_already_exists"})


@dataclass(frozen=True)
class MeterEventResult:
    """Stripe's answer to one meter event: recorded now, or already recorded by an earlier attempt."""

    duplicate: bool
    answer: dict[str, Any]


def _client() -> stripe.StripeClient:
    if not conf.billing_enabled():
        raise BillingDisabled(gettext("Billing is not enabled on this installation."))
    key = conf.stripe_secret_key()
    if not key:
        raise StripeUnavailable(gettext("STRIPE_SECRET_KEY is not set."), code="stripe_not_configured")
    base = conf.stripe_api_base()
    # No SDK-level retries: callers retry with backoff, and every POST carries its own idempotency key.
    return stripe.StripeClient(
        key,
        base_addresses={"api": base.rstrip("/")} if base else None,
        http_client=stripe.RequestsClient(timeout=conf.stripe_timeout_s()),
        max_network_retries=0,
    )


@contextmanager
def _calling(what: str) -> Iterator[None]:
    """Map SDK errors to ours: unreachable or failing on Stripe's side is retryable, the rest is not."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        raise StripeUnavailable(
            gettext("Stripe could not be reached (%(what)s): %(value)s")
            % {"what": what, "value": error.user_message or error}
        )
    except stripe.StripeError as error:
        if error.http_status is None or error.http_status >= 500:
            raise StripeUnavailable(
                gettext("Stripe failed (%(what)s): %(value)s") % {"what": what, "value": error.user_message or error}
            )
        raise StripeRejected(
            gettext("Stripe refused %(what)s: %(value)s") % {"what": what, "value": error.user_message or error}
        )


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


# --- catalog: the meter and its usage price ---------------------------------------------------


def find_or_create_meter(*, event_name: str, display_name: str) -> dict[str, Any]:
    """The active meter for `event_name`, created (summing `value` per customer id) if missing."""
    client = _client()
    with _calling("listing meters"):
        for meter in client.v1.billing.meters.list(params={"status": "active", "limit": 100}).auto_paging_iter():
            if meter["event_name"] == event_name:
                return _plain(meter)
    with _calling("creating the meter"):
        meter = client.v1.billing.meters.create(
            params={
                "display_name": display_name,
                "event_name": event_name,
                "default_aggregation": {"formula": "sum"},
                "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
                "value_settings": {"event_payload_key": "value"},
            },
            options={"idempotency_key": f"qz-meter-{event_name}"},
        )
    return _plain(meter)


def create_usage_price(*, meter_id: str, currency: str, unit_amount_decimal: str, product_name: str) -> dict[str, Any]:
    """A monthly metered price on `meter_id`: each meter unit costs `unit_amount_decimal` minor units."""
    client = _client()
    with _calling("creating the usage price"):
        price = client.v1.prices.create(
            params={
                "currency": currency,
                "unit_amount_decimal": Decimal(unit_amount_decimal),
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
                "product_data": {"name": product_name},
            },
            options={"idempotency_key": f"qz-price-{meter_id}-{currency}-{unit_amount_decimal}"},
        )
    return _plain(price)


# --- customers and subscriptions --------------------------------------------------------------


def create_customer(*, name: str, email: str, metadata: dict[str, str], idempotency_key: str) -> dict[str, Any]:
    client = _client()
    params: CustomerCreateParams = {"name": name, "metadata": metadata}
    if email:
        params["email"] = email
    with _calling("creating the customer"):
        return _plain(client.v1.customers.create(params=params, options={"idempotency_key": idempotency_key}))


def retrieve_customer(customer_id: str) -> dict[str, Any]:
    """The customer with its default payment method expanded."""
    client = _client()
    with _calling("reading the customer"):
        customer = client.v1.customers.retrieve(
            customer_id, params={"expand": ["invoice_settings.default_payment_method"]}
        )
    return _plain(customer)


def set_default_payment_method(*, customer_id: str, payment_method_id: str) -> dict[str, Any]:
    client = _client()
    with _calling("setting the default payment method"):
        customer = client.v1.customers.update(
            customer_id, params={"invoice_settings": {"default_payment_method": payment_method_id}}
        )
    return _plain(customer)


def create_subscription(
    *,
    customer_id: str,
    price_id: str,
    backdate_start: datetime,
    anchor: datetime,
    metadata: dict[str, str],
    idempotency_key: str,
) -> dict[str, Any]:
    """Subscribe the customer to the usage price, periods anchored to calendar months."""
    client = _client()
    with _calling("creating the subscription"):
        subscription = client.v1.subscriptions.create(
            params={
                "customer": customer_id,
                "items": [{"price": price_id}],
                "backdate_start_date": _timestamp(backdate_start),
                "billing_cycle_anchor": _timestamp(anchor),
                "proration_behavior": "none",
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
    return _plain(subscription)


def retrieve_subscription(subscription_id: str) -> dict[str, Any]:
    client = _client()
    with _calling("reading the subscription"):
        return _plain(client.v1.subscriptions.retrieve(subscription_id))


# --- usage ------------------------------------------------------------------------------------


def create_meter_event(
    *, event_name: str, customer_id: str, value: int, identifier: str, timestamp: datetime
) -> MeterEventResult:
    """Send one meter event; an identifier Stripe already holds means an earlier attempt got through."""
    client = _client()
    with _calling("recording usage"):
        try:
            event = client.v1.billing.meter_events.create(
                params={
                    "event_name": event_name,
                    "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                    "identifier": identifier,
                    "timestamp": _timestamp(timestamp),
                },
                options={"idempotency_key": identifier},
            )
        except stripe.InvalidRequestError as error:
            if _is_duplicate(error):
                return MeterEventResult(duplicate=True, answer={"error": str(error.user_message or error)})
            raise
    return MeterEventResult(duplicate=False, answer=_plain(event))


def _is_duplicate(error: stripe.InvalidRequestError) -> bool:
    message = (error.user_message or "").lower()
    return error.code in _DUPLICATE_CODES or ("already exists" in message and "identifier" in message)


def meter_usage_total(*, meter_id: str, customer_id: str, start: datetime, end: datetime) -> int:
    """Stripe's own sum of the meter for one customer over [start, end)."""
    client = _client()
    total = 0
    with _calling("reading usage summaries"):
        summaries = client.v1.billing.meters.event_summaries.list(
            meter_id,
            params={
                "customer": customer_id,
                "start_time": _timestamp(start),
                "end_time": _timestamp(end),
                "limit": 100,
            },
        )
        for summary in summaries.auto_paging_iter():
            total += round(float(summary["aggregated_value"]))
    return total


# --- invoices ---------------------------------------------------------------------------------


def retrieve_invoice(invoice_id: str) -> dict[str, Any]:
    client = _client()
    with _calling("reading an invoice"):
        return _plain(client.v1.invoices.retrieve(invoice_id))


def list_invoices(customer_id: str) -> list[dict[str, Any]]:
    client = _client()
    with _calling("listing invoices"):
        found = client.v1.invoices.list(params={"customer": customer_id, "limit": 100})
        return [_plain(invoice) for invoice in found.auto_paging_iter()]


# --- Checkout and the customer portal ---------------------------------------------------------


def create_setup_checkout(*, customer_id: str, currency: str, success_url: str, cancel_url: str) -> dict[str, Any]:
    """A Checkout session in setup mode: the customer saves a payment method, nothing is charged."""
    client = _client()
    with _calling("opening Checkout"):
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "setup",
                "customer": customer_id,
                "currency": currency,
                "success_url": success_url,
                "cancel_url": cancel_url,
            }
        )
    return _plain(session)


def retrieve_checkout_session(session_id: str) -> dict[str, Any]:
    client = _client()
    with _calling("reading a Checkout session"):
        return _plain(client.v1.checkout.sessions.retrieve(session_id, params={"expand": ["setup_intent"]}))


def create_portal_session(*, customer_id: str, return_url: str) -> dict[str, Any]:
    client = _client()
    with _calling("opening the customer portal"):
        return _plain(
            client.v1.billing_portal.sessions.create(params={"customer": customer_id, "return_url": return_url})
        )


# --- webhooks ---------------------------------------------------------------------------------


def verify_webhook(payload: bytes, signature: str) -> dict[str, Any]:
    """The event in `payload` if its Stripe-Signature verifies over these exact bytes."""
    if not conf.billing_enabled():
        raise BillingDisabled(gettext("Billing is not enabled on this installation."))
    secret = conf.stripe_webhook_secret()
    if not secret:
        raise BadSignature(gettext("STRIPE_WEBHOOK_SECRET is not set; no webhook can be verified."))
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature or "", secret, stripe.Webhook.DEFAULT_TOLERANCE)
        event = json.loads(text)
    except (UnicodeDecodeError, ValueError, stripe.SignatureVerificationError) as error:
        raise BadSignature(gettext("The webhook signature does not verify: %(error)s") % {"error": error})
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise BadSignature(gettext("The webhook body is not a Stripe event."))
    return event
