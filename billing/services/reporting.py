"""Reporting closed usage to Stripe's meter, each ledger second once.

Two steps, both safe to repeat and to run in several workers at once:

1. Batch: closed, unbatched rows of a tenant and UTC day join a new UsageReport by a guarded
   UPDATE (`report IS NULL`), so a row joins exactly one report whoever else is batching.
2. Send: a worker leases an unsent report, sends it as one meter event whose identifier comes
   from the report, and records Stripe's answer, the report's sent time and its rows' reported
   time in one transaction. Stripe refuses an identifier it already holds, so a retry after a
   timeout, or a second worker taking over an expired lease, can never count usage twice.

While Stripe is unreachable nothing is lost: reports stay unsent and the task retries with backoff.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Max, Min, Q, Sum
from django.utils import timezone

from billing import conf, stripe_api
from billing.errors import StripeRejected, StripeUnavailable
from billing.models import BillingAccount, UsageInterval, UsageReport
from billing.services import accounts
from tenants.models import Tenant

MILLIONTHS = Decimal(1_000_000)
BATCH_ROWS = 5000


@dataclass
class ReportRun:
    """What one reporting pass did."""

    batched: int = 0
    sent: int = 0
    duplicates: int = 0
    refused: int = 0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def batch_unreported(*, now: datetime | None = None) -> int:
    """Put closed, unbatched rows into reports, one per tenant and UTC day; returns reports made."""
    now = now or timezone.now()
    pending = (
        UsageInterval.objects.closed()
        .filter(report__isnull=True, ended_at__lte=now)
        .exclude(tenant__billing_account__exempt=True)
        .order_by("tenant_id", "started_at")
        .values_list("pk", "tenant_id", "started_at")[:BATCH_ROWS]
    )
    groups: dict[tuple[int, date], list[int]] = defaultdict(list)
    for pk, tenant_id, started_at in pending:
        groups[(tenant_id, started_at.date())].append(pk)
    made = 0
    accounts_by_tenant: dict[int, BillingAccount] = {}
    for (tenant_id, day), row_ids in groups.items():
        if tenant_id not in accounts_by_tenant:
            accounts_by_tenant[tenant_id] = accounts.ensure_account(tenant=Tenant.objects.get(pk=tenant_id), now=now)
        account = accounts_by_tenant[tenant_id]
        if account.exempt:
            continue
        with transaction.atomic():
            report = UsageReport.objects.create(
                tenant_id=tenant_id, account=account, day=day, seconds=0, amount=0, value=0, event_timestamp=now
            )
            claimed = UsageInterval.objects.filter(pk__in=row_ids, report__isnull=True, ended_at__isnull=False).update(
                report=report
            )
            if not claimed:
                report.delete()  # another worker batched these rows first
                continue
            totals = report.intervals.aggregate(
                seconds=Sum("seconds"), amount=Sum("amount"), first=Min("started_at"), last=Max("ended_at")
            )
            report.seconds = totals["seconds"] or 0
            report.amount = totals["amount"] or Decimal(0)
            report.value = int(report.amount * MILLIONTHS)
            # The last second of usage: always inside the same UTC day, so inside the same month.
            report.event_timestamp = max(totals["last"] - timedelta(seconds=1), totals["first"])
            report.save(update_fields=["seconds", "amount", "value", "event_timestamp"])
            made += 1
    return made


def _lease(report_id: int, *, worker: str, now: datetime) -> bool:
    """Take an unsent report whose lease is free, expired, or already this worker's."""
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(claimed_by=worker)
    return bool(
        UsageReport.objects.filter(free, pk=report_id, sent_at__isnull=True).update(
            claimed_by=worker,
            lease_until=max(now, timezone.now()) + timedelta(seconds=conf.report_lease_s()),
            last_attempt_at=now,
        )
    )


def send_report(report: UsageReport, *, now: datetime) -> bool:
    """Send one leased report; True when it is now recorded as sent (StripeUnavailable propagates)."""
    UsageReport.objects.filter(pk=report.pk).update(attempts=F("attempts") + 1)
    if report.value == 0:
        result = stripe_api.MeterEventResult(duplicate=False, answer={"skipped": "nothing to charge"})
    else:
        catalog = accounts.ensure_catalog()
        try:
            result = stripe_api.create_meter_event(
                event_name=catalog.event_name,
                customer_id=report.account.customer_id,
                value=report.value,
                identifier=report.identifier,
                timestamp=report.event_timestamp,
            )
        except StripeRejected as error:
            UsageReport.objects.filter(pk=report.pk).update(last_error=error.detail[:2000])
            raise
        except StripeUnavailable as error:
            # Let the retry (perhaps another worker) take it at once; the identifier keeps it single.
            UsageReport.objects.filter(pk=report.pk).update(last_error=error.detail[:2000], lease_until=None)
            raise
    with transaction.atomic():
        won = UsageReport.objects.filter(pk=report.pk, sent_at__isnull=True).update(
            sent_at=now, duplicate=result.duplicate, stripe_answer=result.answer, last_error="", lease_until=None
        )
        if won:
            UsageInterval.objects.filter(report=report).update(reported_at=now)
    return bool(won)


def send_unsent(*, now: datetime | None = None, worker: str | None = None) -> ReportRun:
    """Send every unsent report this worker can lease."""
    now = now or timezone.now()
    worker = worker or worker_name()
    run = ReportRun()
    due = UsageReport.objects.filter(sent_at__isnull=True).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(claimed_by=worker)
    )
    for report_id in due.order_by("pk").values_list("pk", flat=True):
        if not _lease(report_id, worker=worker, now=now):
            continue  # another worker holds it
        report = UsageReport.objects.select_related("account").get(pk=report_id)
        try:
            sent = send_report(report, now=now)
        except StripeRejected:
            run.refused += 1  # recorded on the report; its lease keeps it from being hammered
            continue
        if sent:
            run.sent += 1
            run.duplicates += int(UsageReport.objects.filter(pk=report_id, duplicate=True).exists())
    return run


def report_usage(*, now: datetime | None = None, worker: str | None = None) -> ReportRun:
    """Beat: batch closed usage and send what is unsent; StripeUnavailable means retry later."""
    now = now or timezone.now()
    batched = batch_unreported(now=now)
    run = send_unsent(now=now, worker=worker)
    run.batched = batched
    return run
