"""Tenants as Stripe customers: the catalog, customer + subscription, Checkout, portal, card on file."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.translation import gettext

from billing import conf, stripe_api
from billing.errors import BillingDisabled
from billing.models import BillingAccount, StripeCatalog, UsageInterval
from billing.periods import month_period
from quetzal.errors import ServiceError
from tenants import events
from tenants.choices import Role
from tenants.models import Membership, Tenant

PRODUCT_NAME = "Quetzal desktop usage"


def _require_enabled() -> None:
    if not conf.billing_enabled():
        raise BillingDisabled(gettext("Billing is not enabled on this installation."))


def unit_amount_decimal(currency: str) -> str:
    """What one meter unit (a millionth of the currency) costs, in Stripe's minor units."""
    return format(Decimal(conf.minor_units(currency)) / Decimal(1_000_000), "f")


def ensure_catalog() -> StripeCatalog:
    """The meter and metered price this installation bills with, created in Stripe once."""
    _require_enabled()
    event_name, currency = conf.meter_event_name(), conf.currency()
    catalog = StripeCatalog.objects.filter(event_name=event_name, currency=currency).first()
    if catalog is not None and catalog.price_id:
        return catalog
    meter = stripe_api.find_or_create_meter(event_name=event_name, display_name="Quetzal desktop usage")
    price = stripe_api.create_usage_price(
        meter_id=meter["id"],
        currency=currency,
        unit_amount_decimal=unit_amount_decimal(currency),
        product_name=PRODUCT_NAME,
    )
    try:
        with transaction.atomic():
            catalog, _ = StripeCatalog.objects.update_or_create(
                event_name=event_name, currency=currency, defaults={"meter_id": meter["id"], "price_id": price["id"]}
            )
    except IntegrityError:
        # Another worker stored it first; the idempotency keys made it the same meter and price.
        catalog = StripeCatalog.objects.get(event_name=event_name, currency=currency)
    return catalog


def account_for(tenant: Tenant) -> BillingAccount:
    """The tenant's billing account row, created locally (no Stripe call) when missing."""
    account, _ = BillingAccount.objects.get_or_create(tenant=tenant, defaults={"currency": conf.currency()})
    return account


def _billing_email(tenant: Tenant) -> str:
    owner = Membership.objects.filter(tenant=tenant, role=Role.OWNER).select_related("user").order_by("pk").first()
    return owner.user.email if owner else ""


def ensure_account(*, tenant: Tenant, now: datetime | None = None) -> BillingAccount:
    """Make the tenant a Stripe customer subscribed to the usage price (once; safe to repeat)."""
    _require_enabled()
    account = account_for(tenant)
    if account.exempt or (account.stripe_customer_id and account.stripe_subscription_id):
        return account
    catalog = ensure_catalog()
    if not account.stripe_customer_id:
        customer = stripe_api.create_customer(
            name=tenant.name,
            email=_billing_email(tenant),
            metadata={"quetzal_tenant_id": str(tenant.pk), "quetzal_tenant_slug": tenant.slug},
            idempotency_key=f"qz-customer-{account.uuid.hex}",
        )
        with transaction.atomic():
            if BillingAccount.objects.filter(pk=account.pk, stripe_customer_id__isnull=True).update(
                stripe_customer_id=customer["id"]
            ):
                events.billing_customer_created(tenant=tenant, account=account, customer=customer["id"])
        account.refresh_from_db()
    if not account.stripe_subscription_id:
        period = month_period(now or timezone.now())
        # Backdated to the month of the oldest unreported usage, so none of it falls before the start.
        oldest = (
            UsageInterval.objects.for_tenant(tenant)
            .filter(reported_at__isnull=True)
            .aggregate(m=Min("started_at"))["m"]
        )
        start = month_period(oldest).start if oldest and oldest < period.start else period.start
        subscription = stripe_api.create_subscription(
            customer_id=account.customer_id,
            price_id=catalog.price_id,
            backdate_start=start,
            anchor=period.end,
            metadata={"quetzal_tenant_id": str(tenant.pk)},
            idempotency_key=f"qz-subscription-{account.uuid.hex}-{catalog.price_id}",
        )
        with transaction.atomic():
            if BillingAccount.objects.filter(pk=account.pk, stripe_subscription_id="").update(
                stripe_subscription_id=subscription["id"], subscription_status=subscription.get("status") or ""
            ):
                events.billing_subscription_created(tenant=tenant, account=account, subscription=subscription["id"])
        account.refresh_from_db()
    return account


def _payable_account(tenant: Tenant) -> BillingAccount:
    account = ensure_account(tenant=tenant)
    if account.exempt:
        raise ServiceError(
            gettext("%(name)s is not charged for usage; no payment method is needed.") % {"name": tenant.name},
            code="billing_exempt",
        )
    return account


def start_checkout(*, tenant: Tenant, actor, success_url: str, cancel_url: str, ip: str | None = None) -> str:
    """A Stripe Checkout page (setup mode) where a tenant admin saves a payment method."""
    account = _payable_account(tenant)
    session = stripe_api.create_setup_checkout(
        customer_id=account.customer_id,
        currency=account.currency,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    events.billing_checkout_started(actor=actor, tenant=tenant, account=account, session=session["id"], ip=ip)
    return session["url"]


def open_portal(*, tenant: Tenant, actor, return_url: str, ip: str | None = None) -> str:
    """The Stripe customer portal, where a tenant admin manages payment methods and invoices."""
    account = _payable_account(tenant)
    session = stripe_api.create_portal_session(customer_id=account.customer_id, return_url=return_url)
    events.billing_portal_opened(actor=actor, tenant=tenant, account=account, ip=ip)
    return session["url"]


def _card(payment_method: Any) -> tuple[str, str, str]:
    if not isinstance(payment_method, dict):
        return "", "", ""
    card = payment_method.get("card") or {}
    if card:
        expires = f"{int(card.get('exp_month') or 0):02d}/{card.get('exp_year') or ''}" if card.get("exp_year") else ""
        return (card.get("brand") or "card")[:32], (card.get("last4") or "")[:4], expires
    details = payment_method.get(payment_method.get("type") or "") or {}
    return (payment_method.get("type") or "")[:32], (details.get("last4") or "")[:4], ""


def refresh_payment_method(*, account: BillingAccount) -> BillingAccount:
    """Copy the customer's default payment method (brand, last four, expiry) from Stripe."""
    if not account.stripe_customer_id:
        return account
    customer = stripe_api.retrieve_customer(account.stripe_customer_id)
    brand, last4, expires = _card((customer.get("invoice_settings") or {}).get("default_payment_method"))
    BillingAccount.objects.filter(pk=account.pk).update(
        payment_method_brand=brand, payment_method_last4=last4, payment_method_expires=expires
    )
    account.refresh_from_db()
    return account


def refresh_subscription(*, account: BillingAccount) -> BillingAccount:
    """Copy the subscription's status from Stripe."""
    if account.stripe_subscription_id:
        subscription = stripe_api.retrieve_subscription(account.stripe_subscription_id)
        BillingAccount.objects.filter(pk=account.pk).update(subscription_status=subscription.get("status") or "")
        account.refresh_from_db()
    return account


def complete_checkout(*, account: BillingAccount, session_id: str) -> str:
    """A setup Checkout finished: make its payment method the customer's default for invoices."""
    session = stripe_api.retrieve_checkout_session(session_id)
    if session.get("mode") != "setup" or session.get("status") != "complete":
        return "checkout not complete"
    intent = session.get("setup_intent") or {}
    payment_method = intent.get("payment_method") if isinstance(intent, dict) else None
    if isinstance(payment_method, dict):
        payment_method = payment_method.get("id")
    if not payment_method:
        return "checkout without a payment method"
    stripe_api.set_default_payment_method(customer_id=account.customer_id, payment_method_id=payment_method)
    refresh_payment_method(account=account)
    events.billing_payment_method_set(account=account, payment_method=payment_method)
    return "payment method set"


def set_exempt(*, account: BillingAccount, exempt: bool, actor) -> BillingAccount:
    """Operators: record a tenant's usage without charging it (or charge it again)."""
    with transaction.atomic():
        if BillingAccount.objects.filter(pk=account.pk).exclude(exempt=exempt).update(exempt=exempt):
            events.billing_exemption_changed(actor=actor, account=account, exempt=exempt)
    account.refresh_from_db()
    return account
