"""Billing's refusals, each a ServiceError with a stable code."""

from __future__ import annotations

from quetzal.errors import NotFound, ServiceError


class BillingDisabled(NotFound):
    """Billing is switched off on this installation: nothing of it exists (404)."""

    code = "billing_disabled"


class StripeUnavailable(ServiceError):
    """Stripe could not be reached or failed on its side; try again later (nothing was lost)."""

    code = "stripe_unavailable"
    status = 503


class StripeRejected(ServiceError):
    """Stripe refused a request; the message says why."""

    code = "stripe_rejected"
    status = 502


class BadSignature(ServiceError):
    """A webhook whose signature does not verify over its raw body."""

    code = "bad_signature"
    status = 400
