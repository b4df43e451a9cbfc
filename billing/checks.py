"""System checks: billing switched on needs its Stripe keys."""

from __future__ import annotations

from django.core.checks import Error, register

from billing import conf


@register()
def stripe_settings(app_configs, **kwargs) -> list[Error]:
    """With BILLING_ENABLED on, a missing key would only show up at the first charge: say so now."""
    if not conf.billing_enabled():
        return []
    errors = []
    if not conf.stripe_secret_key():
        errors.append(Error("BILLING_ENABLED is on but STRIPE_SECRET_KEY is empty.", id="billing.E001"))
    if not conf.stripe_webhook_secret():
        errors.append(Error("BILLING_ENABLED is on but STRIPE_WEBHOOK_SECRET is empty.", id="billing.E002"))
    return errors
