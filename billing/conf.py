"""Billing settings, each read with a default so a bare installation runs with billing off."""

from __future__ import annotations

from django.conf import settings

# Stripe's minor units per major unit; zero-decimal currencies have none.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)


def billing_enabled() -> bool:
    """The installation-wide switch: off means no ledger, no pages, no Stripe call."""
    return bool(getattr(settings, "BILLING_ENABLED", False))


def stripe_secret_key() -> str:
    return getattr(settings, "STRIPE_SECRET_KEY", "") or ""


def stripe_webhook_secret() -> str:
    return getattr(settings, "STRIPE_WEBHOOK_SECRET", "") or ""


def stripe_api_base() -> str:
    """Empty means Stripe itself; tests and demos point it at localstripe."""
    return getattr(settings, "STRIPE_API_BASE", "") or ""


def stripe_timeout_s() -> float:
    return float(getattr(settings, "STRIPE_TIMEOUT_S", 20))


def currency() -> str:
    return (getattr(settings, "BILLING_CURRENCY", "usd") or "usd").lower()


def grace_days() -> int:
    return int(getattr(settings, "BILLING_GRACE_DAYS", 7))


def meter_event_name() -> str:
    return getattr(settings, "BILLING_METER_EVENT_NAME", "quetzal_desktop_usage") or "quetzal_desktop_usage"


def report_lease_s() -> int:
    """How long a worker owns a usage report it is sending before another may take it over."""
    return int(getattr(settings, "BILLING_REPORT_LEASE_S", 120))


def minor_units(code: str | None = None) -> int:
    """10 ** (decimal places of the currency's minor unit)."""
    return 1 if (code or currency()) in ZERO_DECIMAL_CURRENCIES else 100
