"""Desktop-hours and their cost at the operator's prices when billing is off (no ledger, no Stripe).

The runs are rebuilt from succeeded operations (desktops.services.hours) and priced at each desktop's
template price per hour as it is now: an estimate of what usage would cost, never an invoice.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from billing import conf
from billing.periods import Period, amount_for, hours, seconds_between
from billing.services.usage import UsageSummary, _cell
from desktops.choices import DesktopState
from desktops.models import Desktop
from desktops.services.hours import runs_from_operations
from tenants.models import Tenant

CSV_COLUMNS = [
    "desktop",
    "person",
    "template",
    "day",
    "started_at",
    "ended_at",
    "seconds",
    "hours",
    "price_per_hour",
    "amount",
    "currency",
]


@dataclass(frozen=True)
class Piece:
    """One run of one desktop inside one UTC day of the period, priced."""

    desktop: Desktop
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return seconds_between(self.start, self.end)

    @property
    def person(self) -> str:
        user = self.desktop.user
        return user.email if user is not None else "(pool)"

    @property
    def amount(self):
        return amount_for(self.seconds, self.desktop.template.price_per_hour)


def pieces(*, tenant: Tenant, period: Period, now: datetime | None = None) -> list[Piece]:
    """The tenant's runs in the period, cut at UTC midnights, oldest first."""
    now = now or timezone.now()
    until = min(now, period.end)
    runs = runs_from_operations(tenant=tenant, since=period.start, now=until)
    desktops = Desktop.objects.for_tenant(tenant).select_related("template", "user").in_bulk({d for d, _, _ in runs})
    found: list[Piece] = []
    for desktop_id, start, end in sorted(runs, key=lambda run: run[1]):
        start, end = max(start.astimezone(UTC), period.start), min(end.astimezone(UTC), until)
        while start < end:
            midnight = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            cut = min(end, midnight)
            if seconds_between(start, cut) > 0:
                found.append(Piece(desktops[desktop_id], start, cut))
            start = cut
    return found


def summarize(*, tenant: Tenant, period: Period, now: datetime | None = None) -> UsageSummary:
    """Hours and estimated cost per template, person and day, like the ledger's summary."""
    summary = UsageSummary(period=period, currency=conf.currency())
    for piece in pieces(tenant=tenant, period=period, now=now):
        summary._add(piece.desktop.template.name, piece.person, piece.start.date(), piece.seconds, piece.amount)
    summary.running = Desktop.objects.for_tenant(tenant).filter(state=DesktopState.RUNNING).count()
    return summary


def write_csv(out, *, tenant: Tenant, period: Period, now: datetime | None = None) -> int:
    """The period's runs (one row per desktop, run and day) as CSV; returns rows written."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    written = 0
    currency = conf.currency()
    for piece in pieces(tenant=tenant, period=period, now=now):
        desktop = piece.desktop
        writer.writerow(
            [
                _cell(value)
                for value in (
                    desktop.name,
                    piece.person,
                    desktop.template.name,
                    piece.start.date().isoformat(),
                    piece.start.isoformat(),
                    piece.end.isoformat(),
                    piece.seconds,
                    hours(piece.seconds),
                    desktop.template.price_per_hour,
                    piece.amount,
                    currency,
                )
            ]
        )
        written += 1
    return written
