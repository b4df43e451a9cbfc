"""Two workers reporting the same usage at the same moment, on PostgreSQL: each second sent once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from billing.models import BillingAccount, UsageInterval, UsageReport
from billing.periods import floor_hour
from billing.services import accounts, reporting
from billing.tests.helpers import ledger_millionths, ran
from desktops.tests.factories import DesktopFactory
from tests.services import require

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]
WORKERS = 4


def test_it_reports_each_second_once_with_workers_racing(stripe_world, alice, template):
    require(connection.vendor == "postgresql", "PostgreSQL")
    # Given a day of usage on several desktops, and alice already a customer
    base = floor_hour(timezone.now()) - timedelta(hours=20)
    for n in range(6):
        desktop = DesktopFactory(world=alice, template=template, name=f"d{n}")
        ran(desktop, base + timedelta(minutes=7 * n), base + timedelta(hours=3, seconds=n))
    accounts.ensure_account(tenant=alice.tenant)
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                reporting.report_usage(worker=name)
        except BaseException as error:  # the test reports whatever a worker hit
            errors.append(error)
        finally:
            connections.close_all()

    # When several workers run the reporting pass at the same instant
    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # Then no worker failed, each row joined one report, and each report reached Stripe once
    assert not errors, errors
    assert not UsageInterval.objects.closed().filter(report__isnull=True).exists()
    assert not UsageReport.objects.filter(sent_at__isnull=True).exists()
    identifiers = [e["identifier"] for e in stripe_world.front.seen.meter_events]
    assert len(identifiers) == len(set(identifiers)) == UsageReport.objects.count()
    customer = BillingAccount.objects.get(tenant=alice.tenant).stripe_customer_id
    assert stripe_world.front.meter_total(customer) == ledger_millionths(tenant=alice.tenant) > 0
