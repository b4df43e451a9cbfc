"""The ledger's own handling of sizes, without the API or a worker (test_ledger_sizes has those paths):
row prices and labels, splits, and the cut a resize makes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import UsageInterval
from billing.services import ledger
from billing.tests.helpers import at, rows, run
from desktops.models import Desktop, DesktopTemplate, TemplateSize
from desktops.tests.factories import DesktopFactory

pytestmark = pytest.mark.usefixtures("billing_on")
LABEL = "4 vCPU / 2 GiB RAM / 20 GiB"


@pytest.fixture
def rated(template: DesktopTemplate) -> DesktopTemplate:
    """The 2 vCPU template at 0.10 an hour, each vCPU more 0.02 an hour (no price history recorded)."""
    template.price_per_vcpu_hour = Decimal("0.02")
    template.save()
    return template


def _open_row(desktop: Desktop) -> UsageInterval:
    return UsageInterval.objects.open().get(desktop=desktop)


def test_it_prices_every_hour_of_a_run_at_the_template_price_plus_the_size(alice, rated):
    # Given a desktop two vCPUs larger than its template, run across an hour boundary
    desktop = DesktopFactory(world=alice, template=rated, vcpus=4)
    run(desktop, "2025-01-02 10:30:00", "2025-01-02 11:30:00")
    # Then both hours cost the template's 0.10 plus 0.04 for the size, and the rows name the size
    price = Decimal("0.1400")
    assert rows(desktop) == [
        ("10:30:00", "11:00:00", 1800, price, Decimal("0.070000")),
        ("11:00:00", "11:30:00", 1800, price, Decimal("0.070000")),
    ]
    assert {(r.size_label, r.size_extra_per_hour) for r in UsageInterval.objects.filter(desktop=desktop)} == {
        (LABEL, Decimal("0.0400"))
    }


def test_it_never_prices_a_smaller_size_below_zero(alice, rated):
    # Given vCPUs at 0.20 an hour each, a 1 vCPU desktop takes 0.20 off a 0.10 template
    DesktopTemplate.objects.filter(pk=rated.pk).update(price_per_vcpu_hour=Decimal("0.20"))
    desktop = DesktopFactory(world=alice, template=DesktopTemplate.objects.get(pk=rated.pk), vcpus=1)
    run(desktop, "2025-01-02 10:00:00", "2025-01-02 10:30:00")
    assert rows(desktop) == [("10:00:00", "10:30:00", 1800, Decimal("0.0000"), Decimal("0.000000"))]


def test_it_continues_a_split_row_at_the_size_and_price_it_opened_with(alice, rated):
    # Given a sized desktop running since 08:20, and the template's vCPU rate raised since
    desktop = DesktopFactory(world=alice, template=rated, vcpus=4)
    ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 08:20:00"))
    rated.price_per_vcpu_hour = Decimal("0.05")
    rated.save()
    # When the hourly split runs at 10:05
    assert ledger.split_open_intervals(at=at("2025-01-02 10:05:00")) == 1
    # Then the row goes on from 10:00 with the size it was opened with: a new rate applies from the next start
    row = _open_row(desktop)
    assert (row.started_at, row.size_label, row.size_extra_per_hour, row.price_per_hour) == (
        at("2025-01-02 10:00:00"),
        LABEL,
        Decimal("0.0400"),
        Decimal("0.1400"),
    )


def test_it_cuts_a_size_label_too_long_for_its_column(alice, rated):
    # Given a named size of the longest name and numbers so large that its label passes 100 characters
    name = "N" * 50
    TemplateSize.objects.create(
        template=rated, name=name, vcpus=2, memory_mib=2048, disk_gib=20, extra_per_hour=Decimal("0.5")
    )
    big = 2**31 - 1
    desktop = DesktopFactory(world=alice, template=rated, size_name=name, vcpus=big, memory_mib=big, disk_gib=big)
    label = f"{name}: {big} vCPU / {big} MiB RAM / {big} GiB"
    assert len(label) > 100
    # Then the run is recorded all the same, under the label's first 100 characters
    row = ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:00:00"))
    assert (row.size_label, row.price_per_hour) == (label[:100], Decimal("0.6000"))


# A resize


def test_it_cuts_a_running_desktops_row_at_a_resize_and_opens_the_next_at_the_new_price(alice, rated):
    # Given a desktop running at the template's size since 10:00, and another one running too
    desktop = DesktopFactory(world=alice, template=rated)
    other = DesktopFactory(world=alice, template=rated)
    ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:00:00"))
    ledger.open_interval(desktop_id=other.pk, at=at("2025-01-02 10:00:00"))
    # When it is resized to 4 vCPUs at 10:20
    Desktop.objects.filter(pk=desktop.pk).update(vcpus=4)
    opened = ledger.cut_at_resize(desktop_id=desktop.pk, at=at("2025-01-02 10:20:00.700"))
    # Then its old size is charged up to 10:20 and the new one from then on
    assert opened == _open_row(desktop)
    assert (opened.started_at, opened.size_label, opened.price_per_hour) == (
        at("2025-01-02 10:20:00"),
        LABEL,
        Decimal("0.1400"),
    )
    closed = UsageInterval.objects.closed().get(desktop=desktop)
    assert (closed.ended_at, closed.ended_by, closed.price_per_hour) == (
        at("2025-01-02 10:20:00"),
        "resize",
        Decimal("0.1000"),
    )
    # And the other desktop's row runs on untouched
    assert _open_row(other).started_at == at("2025-01-02 10:00:00")
    assert not UsageInterval.objects.closed().filter(desktop=other).exists()


def test_it_opens_nothing_at_a_resize_of_a_desktop_not_running(alice, rated):
    # Given a desktop that ran until 10:10 and is stopped now
    desktop = DesktopFactory(world=alice, template=rated)
    run(desktop, "2025-01-02 10:00:00", "2025-01-02 10:10:00")
    # Then a resize at 10:20 cuts nothing and opens nothing: its next start opens a row at the new size
    assert ledger.cut_at_resize(desktop_id=desktop.pk, at=at("2025-01-02 10:20:00")) is None
    assert rows(desktop) == [("10:00:00", "10:10:00", 600, Decimal("0.1000"), Decimal("0.016667"))]


def test_it_records_no_resize_with_billing_off(alice, rated, settings):
    desktop = DesktopFactory(world=alice, template=rated)
    ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:00:00"))
    settings.BILLING_ENABLED = False
    assert ledger.cut_at_resize(desktop_id=desktop.pk, at=at("2025-01-02 10:20:00")) is None
    assert rows(desktop) == [("10:00:00", None, None, Decimal("0.1000"), None)]
