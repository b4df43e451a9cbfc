"""Usage read from the ledger: totals per template, person and day, per tenant, and CSV exports."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.db.models import Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing import conf
from billing.models import UsageInterval
from billing.periods import Period, hours
from billing.services import ledger
from tenants.models import Tenant

CSV_COLUMNS = [
    "interval",
    "tenant",
    "desktop",
    "person",
    "template",
    "started_at",
    "ended_at",
    "seconds",
    "hours",
    "price_per_hour",
    "amount",
    "currency",
    "ended_by",
    "reported_at",
]


@dataclass
class UsageLine:
    """Seconds and cost for one template, person, day or tenant."""

    label: str
    seconds: int = 0
    amount: Decimal = Decimal(0)

    @property
    def hours(self) -> Decimal:
        return hours(self.seconds)

    def add(self, seconds: int, amount: Decimal) -> None:
        self.seconds += int(seconds or 0)
        self.amount += amount or Decimal(0)


@dataclass
class UsageSummary:
    """A tenant's usage over one period, including desktops still running (up to now)."""

    period: Period
    currency: str
    total: UsageLine = field(default_factory=lambda: UsageLine("total"))
    by_template: dict[str, UsageLine] = field(default_factory=dict)
    by_person: dict[str, UsageLine] = field(default_factory=dict)
    by_day: dict[date, UsageLine] = field(default_factory=dict)
    running: int = 0

    def _add(self, template: str, person: str, day: date, seconds: int, amount: Decimal) -> None:
        self.total.add(seconds, amount)
        self.by_template.setdefault(template, UsageLine(template)).add(seconds, amount)
        self.by_person.setdefault(person, UsageLine(person)).add(seconds, amount)
        self.by_day.setdefault(day, UsageLine(day.isoformat())).add(seconds, amount)

    def templates(self) -> list[UsageLine]:
        return sorted(self.by_template.values(), key=lambda line: (-line.amount, line.label))

    def people(self) -> list[UsageLine]:
        return sorted(self.by_person.values(), key=lambda line: (-line.amount, line.label))

    def days(self) -> list[UsageLine]:
        """Every day of the period, zero where nothing ran (the chart's x axis)."""
        return [self.by_day.get(day, UsageLine(day.isoformat())) for day in self.period.days()]

    def chart(self) -> dict[str, list]:
        """Daily hours and cost as uPlot wants them: unix seconds, then one list per series."""
        days = self.period.days()
        lines = self.days()
        return {
            "x": [int(datetime.combine(day, time.min, tzinfo=UTC).timestamp()) for day in days],
            "hours": [float(line.hours) for line in lines],
            "cost": [float(line.amount) for line in lines],
        }


def _open_pieces(
    rows: Iterable[UsageInterval], period: Period, now: datetime
) -> Iterator[tuple[UsageInterval, ledger.Segment]]:
    """Stretches of still-open intervals that fall in the period, priced as they will be when closed."""
    until = min(now, period.end)
    for row in rows:
        for part in ledger.segments(row, until):
            if period.start <= part.start < period.end:
                yield row, part


def summarize(*, tenant: Tenant, period: Period, now: datetime | None = None) -> UsageSummary:
    """The tenant's usage in the period: per template, per person and per day."""
    now = now or timezone.now()
    summary = UsageSummary(period=period, currency=conf.currency())
    rows = UsageInterval.objects.for_tenant(tenant)
    closed = (
        rows.closed()
        .in_period(period)
        .annotate(day=TruncDate("started_at", tzinfo=UTC))
        .values("template_name", "person_email", "day")
        .annotate(seconds=Sum("seconds"), amount=Sum("amount"))
    )
    for line in closed:
        summary._add(
            line["template_name"], line["person_email"] or "(pool)", line["day"], line["seconds"], line["amount"]
        )
    open_rows = list(rows.open().filter(started_at__lt=period.end))
    summary.running = len(open_rows)
    for row, part in _open_pieces(open_rows, period, now):
        summary._add(row.template_name, row.person_email or "(pool)", part.start.date(), part.seconds, part.amount)
    return summary


def tenant_totals(*, period: Period, now: datetime | None = None) -> list[tuple[Tenant, UsageLine, int]]:
    """Operators: every tenant's usage in the period (tenant, totals, desktops running now)."""
    now = now or timezone.now()
    lines: dict[int, UsageLine] = {}
    running: dict[int, int] = {}
    closed = (
        UsageInterval.objects.closed()
        .in_period(period)
        .values("tenant_id")
        .annotate(total_seconds=Sum("seconds"), total_amount=Sum("amount"))
    )
    for line in closed:
        lines.setdefault(line["tenant_id"], UsageLine(str(line["tenant_id"]))).add(
            line["total_seconds"], line["total_amount"]
        )
    open_rows = list(UsageInterval.objects.open().filter(started_at__lt=period.end))
    for row in open_rows:
        running[row.tenant_id] = running.get(row.tenant_id, 0) + 1
    for row, part in _open_pieces(open_rows, period, now):
        lines.setdefault(row.tenant_id, UsageLine(str(row.tenant_id))).add(part.seconds, part.amount)
    tenants = Tenant.objects.in_bulk(list(lines))
    found = [(tenants[tid], line, running.get(tid, 0)) for tid, line in lines.items() if tid in tenants]
    return sorted(found, key=lambda item: (-item[1].amount, item[0].name))


def _cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula (names here are typed by users)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(row: UsageInterval) -> list[str]:
    """One ledger row as CSV cells, in CSV_COLUMNS order."""
    return [
        _cell(value)
        for value in (
            row.uuid,
            row.tenant.slug,
            row.desktop_name,
            row.person_email,
            row.template_name,
            row.started_at.isoformat(),
            row.ended_at.isoformat() if row.ended_at else "",
            row.seconds,
            row.hours,
            row.price_per_hour,
            row.amount,
            row.currency,
            row.ended_by,
            row.reported_at.isoformat() if row.reported_at else "",
        )
    ]


def write_csv(out, *, period: Period, tenant: Tenant | None = None) -> int:
    """Closed ledger rows of the period (one tenant's, or everyone's) as CSV; returns rows written."""
    rows = UsageInterval.objects.closed().in_period(period).select_related("tenant")
    if tenant is not None:
        rows = rows.for_tenant(tenant)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    written = 0
    for row in rows.order_by("tenant__slug", "started_at", "pk").iterator(chunk_size=2000):
        writer.writerow(csv_row(row))
        written += 1
    return written


def running_intervals(*, tenant: Tenant, since: datetime, now: datetime) -> list[tuple[datetime, datetime]] | None:
    """The ledger's running stretches of a tenant's desktops since a moment (open ones end now); None with billing off.

    The desktops dashboard's hours chart reads it through `desktops.services.hours.register_interval_source`.
    """
    if not conf.billing_enabled():
        return None
    rows = UsageInterval.objects.for_tenant(tenant).filter(Q(ended_at__isnull=True) | Q(ended_at__gt=since))
    return [(start, end or now) for start, end in rows.values_list("started_at", "ended_at")]
