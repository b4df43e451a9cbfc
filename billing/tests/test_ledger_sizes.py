"""Prices follow a desktop's size, from the moment it applies: the ledger cuts its row at a resize."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.choices import EndedBy
from billing.models import UsageInterval
from billing.periods import to_second
from billing.services import ledger, prices
from desktops.choices import DesktopState
from desktops.models import Desktop, TemplateSize
from desktops.services import resize, sizes
from tests.fixtures import api_client

pytestmark = pytest.mark.usefixtures("billing_on")


@pytest.fixture
def sized(template):
    """0.10/h at 2 vCPU / 2 GiB / 20 GiB; +0.02 per vCPU, +0.01 per GiB RAM, +0.001 per disk GiB; a "Large" size."""
    template.max_vcpus, template.max_memory_mib, template.max_disk_gib = 8, 16384, 100
    template.price_per_vcpu_hour = Decimal("0.02")
    template.price_per_gib_ram_hour = Decimal("0.01")
    template.price_per_disk_gib_hour = Decimal("0.001")
    template.save()
    TemplateSize.objects.create(template=template, name="Large", vcpus=4, memory_mib=8192, disk_gib=40)
    return template


def _launch(world, template, work, **size) -> Desktop:
    client = api_client(world.member, world.tenant)
    with work():
        response = client.post("/api/desktop/start", {"template": template.pk, **size}, format="json")
    assert response.status_code == 202, response.content
    return Desktop.objects.get(pk=response.json()["desktop"]["id"])


def _rows(desktop: Desktop) -> list[UsageInterval]:
    return list(UsageInterval.objects.filter(desktop=desktop).order_by("started_at", "pk"))


def test_it_charges_a_desktop_at_its_sizes_price(alice, host, sized, work):
    # Given a member launching the Large size; Then its usage row carries Large's price and label
    desktop = _launch(alice, sized, work, size="Large")
    [row] = _rows(desktop)
    assert row.price_per_hour == Decimal("0.2200") and row.size_extra_per_hour == Decimal("0.1200")
    assert row.size_label.startswith("Large: 4 vCPU")


def test_it_cuts_the_row_at_a_resize_and_charges_the_new_size_after_it(alice, host, sized, work):
    # Given a running desktop at the default size
    desktop = _launch(alice, sized, work)
    # When its disk has grown to 60 GiB (the worker's last step, run here as it runs after the VM changed)
    resize.record_size(desktop, sizes.Size(vcpus=2, memory_mib=2048, disk_gib=60))
    # Then the old row ended at the resize, at the old price; a new one runs from the same second at the new one
    before, after = _rows(desktop)
    assert before.ended_by == EndedBy.RESIZE and before.price_per_hour == Decimal("0.1000")
    assert after.is_open and after.started_at == before.ended_at
    assert after.price_per_hour == Decimal("0.1400") and after.size_extra_per_hour == Decimal("0.0400")
    assert "60 GiB" in after.size_label
    # And closing later bills the second stretch at the new price
    ledger.close_open_intervals(desktop_id=desktop.pk, at=after.started_at + timedelta(seconds=3600))
    closed = [r for r in _rows(desktop) if r.started_at >= after.started_at]
    assert sum(r.amount for r in closed) == Decimal("0.14")


def test_it_opens_the_next_start_at_the_new_size_after_a_resize_while_stopped(alice, host, sized, work):
    desktop = _launch(alice, sized, work)
    client = api_client(alice.member, alice.tenant)
    with work():
        client.post(f"/api/v1/desktops/{desktop.pk}/stop/")
    # When the stopped desktop is resized to 4 vCPUs (nothing is open: nothing to cut)
    with work():
        answer = client.post(f"/api/v1/desktops/{desktop.pk}/resize/", {"vcpus": 4}, format="json")
    assert answer.status_code == 202
    assert [r.ended_by for r in _rows(desktop)] == [EndedBy.STOPPING]
    # Then its next start is charged at 0.10 + 2 x 0.02
    with work():
        client.post(f"/api/v1/desktops/{desktop.pk}/start/")
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.RUNNING
    assert _rows(desktop)[-1].price_per_hour == Decimal("0.1400")


def test_it_keeps_the_size_extra_across_a_template_price_change(alice, host, sized, work):
    # Given a Large desktop running; When the template's price goes to 0.30 from an hour on
    desktop = _launch(alice, sized, work, size="Large")
    [row] = _rows(desktop)
    change_at = to_second(row.started_at + timedelta(minutes=10))
    prices.change_price(template=sized, price_per_hour="0.30", effective_at=change_at, now=row.started_at)
    # Then the row is cut at the change and the later stretch costs the new price plus Large's extra
    parts = ledger.segments(row, change_at + timedelta(minutes=5))
    # (segments are also cut at hour boundaries: a run across one adds a cut at the same price)
    prices_in_turn = [
        p.price_per_hour for i, p in enumerate(parts) if i == 0 or p.price_per_hour != parts[i - 1].price_per_hour
    ]
    assert prices_in_turn == [Decimal("0.2200"), Decimal("0.4200")], parts
    assert min(p.start for p in parts if p.price_per_hour == Decimal("0.4200")) == change_at
