"""The desktops dashboard reads desktop-hours from the billing ledger when billing is on."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from billing.models import UsageInterval
from desktops.services import hours
from desktops.tests.factories import DesktopFactory


def test_it_reads_the_billing_ledger_when_billing_is_on(alice, template, settings):
    settings.BILLING_ENABLED = True
    now = timezone.now()
    desktop = DesktopFactory(world=alice, template=template, lived_in=True)
    UsageInterval.objects.create(
        tenant=alice.tenant,
        desktop=desktop,
        desktop_name=desktop.name,
        template_name=template.name,
        price_per_hour=Decimal("0.10"),
        currency="usd",
        started_at=now - timedelta(minutes=90),
        ended_at=now - timedelta(minutes=30),
        seconds=3600,
    )
    days = hours.desktop_hours_per_day(tenant=alice.tenant, days=2, now=now)
    assert round(sum(d.hours for d in days), 2) == 1.0
