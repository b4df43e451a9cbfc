"""Celery tasks: thin wrappers over the billing services; every one is a no-op with billing off."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing import conf
from billing.errors import StripeUnavailable
from billing.models import BillingAccount
from billing.services import dunning, invoices, ledger, prices, reporting

# Backoff while Stripe is unreachable: 30 s doubling to 10 min, far under the broker's visibility timeout.
RETRY_BACKOFF_MAX_S = 600
MAX_RETRIES = 12


def backoff_s(retries: int) -> int:
    """Seconds before retry number `retries` + 1."""
    return min(RETRY_BACKOFF_MAX_S, 30 * 2**retries)


@shared_task(acks_late=True)
def maintain_ledger() -> dict:
    """Beat (every minute): repair intervals a crash left, split at the hour, bring due prices in."""
    if not conf.billing_enabled():
        return {}
    now = timezone.now()
    repaired = ledger.repair_open_intervals(now=now)
    return {
        "closed": len(repaired.closed),
        "opened": len(repaired.opened),
        "split": ledger.split_open_intervals(at=now),
        "prices": prices.apply_due_changes(now=now),
    }


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def report_usage(self) -> dict:
    """Beat (every minute): send closed usage to Stripe's meter; retried with backoff when unreachable."""
    if not conf.billing_enabled():
        return {}
    try:
        run = reporting.report_usage()
    except StripeUnavailable as error:
        if self.request.retries >= self.max_retries:
            return {"error": error.detail}  # the next beat starts again; every report is still kept
        raise self.retry(exc=error, countdown=backoff_s(self.request.retries))
    return {"batched": run.batched, "sent": run.sent, "duplicates": run.duplicates, "refused": run.refused}


@shared_task(acks_late=True)
def enforce_grace() -> list[int]:
    """Beat: suspend tenants whose grace period after a failed payment has ended."""
    if not conf.billing_enabled():
        return []
    return dunning.enforce_grace()


@shared_task(acks_late=True)
def sync_invoices() -> int:
    """Beat (a few times a day): refresh invoices and standing from Stripe behind the webhooks."""
    if not conf.billing_enabled():
        return 0
    synced = 0
    for account in BillingAccount.objects.filter(stripe_customer_id__isnull=False, exempt=False):
        try:
            synced += invoices.sync_invoices(account=account)
        except StripeUnavailable:
            break
        dunning.recompute_standing(account=account, at=timezone.now())
    return synced
