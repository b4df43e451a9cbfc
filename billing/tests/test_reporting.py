"""Reporting usage to Stripe's meter: every ledger second once, whatever retries and workers do.

Stripe's meter endpoints are served by the test front server (localstripe has none); it checks
each request as Stripe documents it and refuses a duplicate identifier like Stripe does.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.utils import timezone

from billing import conf, tasks
from billing.errors import StripeUnavailable
from billing.models import BillingAccount, StripeCatalog, UsageInterval, UsageReport
from billing.periods import floor_hour
from billing.services import accounts, reporting
from billing.tests.conftest import NOWHERE
from billing.tests.helpers import ledger_millionths, ran
from desktops.tests.factories import DesktopFactory

pytestmark = pytest.mark.stripe


@pytest.fixture
def usage(alice, template):
    """Alice's closed usage over two days: two desktops, runs across hour boundaries."""
    base = floor_hour(timezone.now()) - timedelta(hours=30)
    first, second = (
        DesktopFactory(world=alice, template=template, name="one"),
        DesktopFactory(world=alice, template=template, name="two"),
    )
    ran(first, base + timedelta(minutes=10), base + timedelta(hours=2, minutes=5, seconds=7))
    ran(second, base + timedelta(minutes=59, seconds=59), base + timedelta(hours=1, seconds=1))
    ran(first, base + timedelta(hours=25), base + timedelta(hours=26, minutes=30))
    return alice


def _assert_each_second_once(world, tenant) -> None:
    """Every row reported, each meter identifier accepted once, and Stripe's sum equals the ledger."""
    account = BillingAccount.objects.get(tenant=tenant)
    assert not UsageInterval.objects.closed().filter(tenant=tenant, reported_at__isnull=True).exists()
    identifiers = [e["identifier"] for e in world.front.seen.meter_events]
    assert len(identifiers) == len(set(identifiers))
    assert set(identifiers) == {r.identifier for r in UsageReport.objects.filter(tenant=tenant)}
    assert world.front.meter_total(account.stripe_customer_id) == ledger_millionths(tenant=tenant) > 0


def test_it_sends_meter_events_as_stripe_documents_them(stripe_world, usage):
    # When the reporting beat runs
    run = reporting.report_usage()
    # Then one meter event per UTC day went out, for alice's customer, named after the meter
    assert run.sent == UsageReport.objects.count() == len(stripe_world.front.seen.meter_events)
    account = BillingAccount.objects.get(tenant=usage.tenant)
    catalog = StripeCatalog.objects.get()
    for event in stripe_world.front.seen.meter_events:
        report = UsageReport.objects.get(uuid=event["identifier"].removeprefix("qz-usage-"))
        assert event["event_name"] == catalog.event_name == conf.meter_event_name()
        assert event["payload"] == {"stripe_customer_id": account.stripe_customer_id, "value": str(report.value)}
        first = min(r.started_at for r in report.intervals.all())
        last = max(r.ended_at for r in report.intervals.all())
        assert int(first.timestamp()) <= event["timestamp"] < int(last.timestamp())
        # And the report records Stripe's answer in the same step that marked its rows reported
        assert report.sent_at is not None and report.stripe_answer["identifier"] == event["identifier"]
        assert {r.reported_at for r in report.intervals.all()} == {report.sent_at}
    _assert_each_second_once(stripe_world, usage.tenant)
    # And running again sends nothing more
    assert reporting.report_usage().sent == 0


def test_it_reports_each_second_once_when_a_second_worker_takes_over(stripe_world, usage):
    now = timezone.now()
    # Given worker A batched the usage and took the first report, then died before sending it
    reporting.batch_unreported(now=now)
    first = UsageReport.objects.order_by("pk").first()
    assert reporting._lease(first.pk, worker="A", now=now)
    # When worker B runs: it batches nothing new and leaves A's leased report alone
    run = reporting.report_usage(now=now, worker="B")
    assert run.batched == 0 and run.sent == UsageReport.objects.count() - 1
    assert UsageReport.objects.get(pk=first.pk).sent_at is None
    # When A's lease has expired, B sends it
    later = now + timedelta(seconds=conf.report_lease_s() + 1)
    assert reporting.report_usage(now=later, worker="B").sent == 1
    # Then every second went to Stripe exactly once
    _assert_each_second_once(stripe_world, usage.tenant)
    assert not stripe_world.front.seen.duplicate_refusals


def test_it_reports_each_second_once_when_a_timed_out_request_had_reached_stripe(stripe_world, usage, settings):
    # Given Stripe records the first event but answers only after the client gave up
    settings.STRIPE_TIMEOUT_S = 0.5
    stripe_world.front.stall_next_meter_events, stripe_world.front.stall_s = 1, 1.5
    with pytest.raises(StripeUnavailable):
        reporting.report_usage(worker="A")
    assert len(stripe_world.front.seen.meter_events) == 1
    assert UsageReport.objects.filter(sent_at__isnull=True).count() == UsageReport.objects.count()
    # When the task retries: the same identifier and idempotency key go out again
    reporting.report_usage(worker="A")
    # Then Stripe replays its first answer instead of counting again
    assert len([k for k in stripe_world.front.seen.idempotent_replays if k.startswith("qz-usage-")]) == 1
    _assert_each_second_once(stripe_world, usage.tenant)


def test_it_reports_each_second_once_when_stripe_refuses_a_known_identifier(stripe_world, usage, settings):
    # Given an attempt reached Stripe but its answer was lost, and Stripe has since forgotten the idempotency key
    settings.STRIPE_TIMEOUT_S = 0.5
    stripe_world.front.stall_next_meter_events, stripe_world.front.stall_s = 1, 1.5
    with pytest.raises(StripeUnavailable):
        reporting.report_usage(worker="A")
    stripe_world.front.forget_idempotency_keys()
    # When a second worker takes the report over after the lease
    later = timezone.now() + timedelta(seconds=conf.report_lease_s() + 1)
    reporting.report_usage(now=later, worker="B")
    # Then Stripe refuses the known identifier, and that counts as delivered, not as lost or doubled
    [refused] = stripe_world.front.seen.duplicate_refusals
    report = UsageReport.objects.get(uuid=refused.removeprefix("qz-usage-"))
    assert report.duplicate and report.sent_at is not None
    _assert_each_second_once(stripe_world, usage.tenant)


def test_it_keeps_usage_while_stripe_is_unreachable_and_sends_it_later(stripe_world, usage, settings):
    # Given Stripe cannot be reached
    reachable = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = NOWHERE
    with pytest.raises(StripeUnavailable):
        reporting.report_usage()
    assert not UsageInterval.objects.filter(reported_at__isnull=False).exists()
    # When it can again, everything recorded meanwhile goes out
    settings.STRIPE_API_BASE = reachable
    reporting.report_usage()
    _assert_each_second_once(stripe_world, usage.tenant)


def test_it_retries_the_task_with_backoff_while_stripe_is_unreachable(billing_on, usage, monkeypatch):
    # Given Stripe is unreachable (billing_on points at a closed port)
    countdowns = []

    def retry(exc=None, countdown=None, **kwargs):
        countdowns.append((type(exc), countdown))
        raise Retry()

    monkeypatch.setattr(tasks.report_usage, "retry", retry)
    # When the beat task runs, it asks Celery to retry later instead of failing
    with pytest.raises(Retry):
        tasks.report_usage.run()
    assert countdowns == [(StripeUnavailable, 30)]
    # And the wait grows, capped well under the broker's visibility timeout
    waits = [tasks.backoff_s(n) for n in range(12)]
    assert waits == sorted(waits) and waits[0] == 30 and max(waits) == tasks.RETRY_BACKOFF_MAX_S


def test_it_never_charges_an_exempt_tenant(stripe_world, usage, bob, template):
    accounts.set_exempt(account=accounts.account_for(usage.tenant), exempt=True, actor=None)
    ran(
        DesktopFactory(world=bob, template=template),
        timezone.now() - timedelta(hours=3),
        timezone.now() - timedelta(hours=2),
    )
    reporting.report_usage()
    assert not UsageReport.objects.filter(tenant=usage.tenant).exists()
    assert BillingAccount.objects.get(tenant=usage.tenant).stripe_customer_id is None
    _assert_each_second_once(stripe_world, bob.tenant)
