"""Arrears: a failed payment starts a grace period; after it the tenant is suspended; paying lifts it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing import conf
from billing.models import BillingAccount, Invoice
from desktops.choices import STOPPABLE_STATES, OperationKind
from desktops.models import Desktop
from desktops.services.requests import request_action
from quetzal.errors import ServiceError
from tenants import events
from tenants.choices import TenantStatus
from tenants.services.tenants import set_status

log = logging.getLogger(__name__)
SUSPENSION_REASON = "Payment overdue: the grace period after a failed payment has ended."


def recompute_standing(*, account: BillingAccount, at: datetime) -> str:
    """Start or clear arrears from the invoices as Stripe last described them."""
    overdue = Invoice.objects.filter(account=account, status="open", payment_failed=True)
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().select_related("tenant").get(pk=account.pk)
        if overdue.exists():
            if account.arrears_since is not None:
                return "still in arrears"
            account.arrears_since = at
            account.grace_until = at + timedelta(days=conf.grace_days())
            account.save(update_fields=["arrears_since", "grace_until", "updated_at"])
            events.billing_payment_failed(account=account, invoices=list(overdue.values_list("stripe_id", flat=True)))
            return "arrears started"
        if account.arrears_since is None:
            return "in good standing"
        lift = account.suspended_by_billing
        account.arrears_since = account.grace_until = None
        account.suspended_by_billing = False
        account.save(update_fields=["arrears_since", "grace_until", "suspended_by_billing", "updated_at"])
        events.billing_arrears_cleared(account=account)
        if lift:
            set_status(tenant=account.tenant, status=TenantStatus.ACTIVE, reason="Overdue invoices paid")
            return "arrears cleared; tenant reactivated"
        return "arrears cleared"


def enforce_grace(*, now: datetime | None = None) -> list[int]:
    """Suspend tenants whose grace period has ended, and stop their running desktops."""
    now = now or timezone.now()
    suspended = []
    due = BillingAccount.objects.filter(arrears_since__isnull=False, grace_until__lte=now, suspended_by_billing=False)
    for account in due.select_related("tenant"):
        with transaction.atomic():
            tenant = account.tenant
            tenant.refresh_from_db()
            if tenant.status != TenantStatus.ACTIVE:
                continue  # an operator suspended it already; paying must not reactivate it for them
            if not BillingAccount.objects.filter(pk=account.pk, suspended_by_billing=False).update(
                suspended_by_billing=True
            ):
                continue
            set_status(tenant=tenant, status=TenantStatus.SUSPENDED, reason=SUSPENSION_REASON)
            suspended.append(tenant.pk)
    for account in BillingAccount.objects.filter(suspended_by_billing=True).select_related("tenant"):
        stop_running_desktops(tenant=account.tenant)
    return suspended


def stop_running_desktops(*, tenant) -> int:
    """Queue a stop for each running or paused desktop of a tenant suspended for non-payment."""
    stopped = 0
    for desktop in Desktop.objects.for_tenant(tenant).filter(state__in=STOPPABLE_STATES):
        try:
            request_action(desktop=desktop, kind=OperationKind.STOP, actor=None, params={"reason": SUSPENSION_REASON})
        except ServiceError as error:
            # Busy with another operation: the next enforcement pass tries again.
            log.info("not stopping desktop %s of suspended tenant %s yet: %s", desktop.pk, tenant.slug, error.detail)
            continue
        stopped += 1
    return stopped
