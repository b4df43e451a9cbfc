"""Price changes apply from their time on: a running interval is split there, never repriced before."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import PriceChange, UsageInterval
from billing.periods import to_second
from billing.services import ledger, prices
from billing.tests.helpers import at, rows, run
from desktops.models import DesktopTemplate
from desktops.tests.factories import DesktopFactory
from quetzal.errors import ServiceError
from tenants.models import AuditEvent

pytestmark = pytest.mark.usefixtures("billing_on")


def test_it_splits_a_running_interval_at_a_rate_change(alice, template):
    # Given a desktop running at 0.10/h since 10:00
    desktop = DesktopFactory(world=alice, template=template)
    ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:00:00"))
    # When, at 10:10, the price becomes 0.40/h from 10:20
    prices.change_price(
        template=template, price_per_hour="0.40", effective_at=at("2025-01-02 10:20:00"), now=at("2025-01-02 10:10:00")
    )
    ledger.close_open_intervals(desktop_id=desktop.pk, at=at("2025-01-02 10:50:00"))
    # Then the time before 10:20 keeps the old price and the time after gets the new one
    assert rows(desktop) == [
        ("10:00:00", "10:20:00", 1200, Decimal("0.1000"), Decimal("0.033333")),
        ("10:20:00", "10:50:00", 1800, Decimal("0.4000"), Decimal("0.200000")),
    ]
    assert AuditEvent.objects.filter(action="billing.price_change").count() == 1


def test_it_keeps_a_runs_first_stretch_at_its_opening_price_when_a_change_lands_in_that_second(alice, template):
    # Given a desktop that started at 10:00:00.4 at 0.10/h
    desktop = DesktopFactory(world=alice, template=template)
    ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:00:00.400"))
    # When, later in that second, the price becomes 0.40/h from now (the change counts from 10:00:00)
    prices.change_price(template=template, price_per_hour="0.40", now=at("2025-01-02 10:00:00.800"))
    ledger.close_open_intervals(desktop_id=desktop.pk, at=at("2025-01-02 10:30:00"))
    # Then the run keeps the price it started at: the change was not in force when it began
    assert rows(desktop) == [("10:00:00", "10:30:00", 1800, Decimal("0.1000"), Decimal("0.050000"))]


def test_it_refuses_a_price_change_in_the_past(alice, template):
    # Given usage already recorded at 0.10/h
    desktop = DesktopFactory(world=alice, template=template)
    run(desktop, "2025-01-02 10:00:00", "2025-01-02 10:30:00")
    # When someone tries to make 0.90/h apply from 10:15 at 10:40
    with pytest.raises(ServiceError) as refused:
        prices.change_price(
            template=template,
            price_per_hour="0.90",
            effective_at=at("2025-01-02 10:15:00"),
            now=at("2025-01-02 10:40:00"),
        )
    # Then it is refused and nothing recorded changes
    assert refused.value.code == "retroactive_price_change"
    assert not PriceChange.objects.exists()
    assert rows(desktop) == [("10:00:00", "10:30:00", 1800, Decimal("0.1000"), Decimal("0.050000"))]


def test_it_prices_new_runs_at_the_price_in_force_when_they_start(alice, template):
    desktop = DesktopFactory(world=alice, template=template)
    prices.change_price(
        template=template,
        price_per_hour="0.2500",
        effective_at=at("2025-01-02 12:00:00"),
        now=at("2025-01-02 11:00:00"),
    )
    run(desktop, "2025-01-02 11:30:00", "2025-01-02 11:45:00")
    run(desktop, "2025-01-02 12:30:00", "2025-01-02 12:45:00")
    assert [r[3] for r in rows(desktop)] == [Decimal("0.1000"), Decimal("0.2500")]


def test_it_goes_on_charging_a_run_its_price_across_an_hour_when_an_edit_went_unrecorded(alice, template, settings):
    # Given a run at 0.10/h since 08:20, and its template's price edited while billing was off (no history kept)
    desktop = DesktopFactory(world=alice, template=template)
    ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 08:20:00"))
    settings.BILLING_ENABLED = False
    template.price_per_hour = Decimal("0.50")
    template.save()
    settings.BILLING_ENABLED = True
    assert not PriceChange.objects.filter(template=template).exists()
    # When the run is split at the hour
    ledger.split_open_intervals(at=at("2025-01-02 09:05:00"))
    # Then the next hour goes on at the run's own price: no price in force from an unknown time is applied
    assert UsageInterval.objects.open().get(desktop=desktop).price_per_hour == Decimal("0.1000")


def test_it_records_a_price_edited_on_the_template_from_that_moment(alice, template):
    # Given a desktop running for the last 20 minutes at 0.10/h
    desktop = DesktopFactory(world=alice, template=template)
    started = to_second(timezone.now() - timedelta(minutes=20))
    ledger.open_interval(desktop_id=desktop.pk, at=started)
    # When an operator edits the template's price (as in the admin)
    edited = DesktopTemplate.objects.get(pk=template.pk)
    edited.price_per_hour = Decimal("0.3000")
    edited.save()
    change = PriceChange.objects.filter(template=template).order_by("-effective_at").first()
    ledger.close_open_intervals(desktop_id=desktop.pk, at=change.effective_at + timedelta(minutes=10))
    # Then the time before the edit costs 0.10/h and the time after 0.30/h
    for row in UsageInterval.objects.filter(desktop=desktop):
        expected = Decimal("0.1000") if row.started_at < change.effective_at else Decimal("0.3000")
        assert row.price_per_hour == expected
    expected_seconds = int((change.effective_at - started).total_seconds()) + 600
    assert sum(r.seconds for r in UsageInterval.objects.filter(desktop=desktop)) == expected_seconds


def test_it_brings_a_scheduled_price_onto_the_template_when_due(alice, template):
    now = timezone.now()
    prices.change_price(template=template, price_per_hour="0.75", effective_at=now + timedelta(hours=1), now=now)
    assert prices.apply_due_changes(now=now) == 0
    assert prices.apply_due_changes(now=now + timedelta(hours=2)) == 1
    template.refresh_from_db()
    assert template.price_per_hour == Decimal("0.7500")


def test_it_refuses_a_negative_or_overly_precise_price(template):
    for bad in ("-1", "0.00001", "abc"):
        with pytest.raises(ServiceError) as refused:
            prices.change_price(template=template, price_per_hour=bad)
        assert refused.value.code == "invalid_price"
