"""Time arithmetic of the ledger: whole seconds, hour boundaries and calendar-month periods (UTC)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext

from quetzal.errors import ServiceError

HOUR = timedelta(hours=1)
SECONDS_PER_HOUR = Decimal(3600)
# Ledger amounts keep six decimal places of the currency: exact to well under a cent per row.
AMOUNT_QUANTUM = Decimal("0.000001")


def to_second(moment: datetime) -> datetime:
    """The moment in UTC, cut to the whole second (the ledger's resolution)."""
    return moment.astimezone(UTC).replace(microsecond=0)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_boundaries(start: datetime, end: datetime) -> list[datetime]:
    """Every whole hour strictly between start and end."""
    boundaries = []
    cursor = floor_hour(start) + HOUR
    while cursor < end:
        boundaries.append(cursor)
        cursor += HOUR
    return boundaries


def seconds_between(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds())


def amount_for(seconds: int, price_per_hour: Decimal) -> Decimal:
    """Cost of `seconds` at `price_per_hour`, rounded half-up to the ledger quantum."""
    return (Decimal(seconds) * price_per_hour / SECONDS_PER_HOUR).quantize(AMOUNT_QUANTUM, rounding=ROUND_HALF_UP)


def hours(seconds: int) -> Decimal:
    """Seconds as hours, to the second (six decimals is finer than one second)."""
    return (Decimal(seconds) / SECONDS_PER_HOUR).quantize(AMOUNT_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Period:
    """A calendar month in UTC: the billing period Stripe subscriptions are anchored to."""

    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return self.start.strftime("%Y-%m")

    def days(self) -> list[date]:
        count = (self.end - self.start).days
        return [(self.start + timedelta(days=i)).date() for i in range(count)]


def month_period(moment: datetime) -> Period:
    """The calendar month (UTC) containing `moment`."""
    moment = moment.astimezone(UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return Period(start=start, end=end)


# ASCII digits, months 01 to 12, from 0001-01 to 9999-11 (the month after must exist too).
PERIOD_PATTERN = r"^(?!0000-)(?!9999-12)[0-9]{4}-(0[1-9]|1[0-2])$"


def parse_period(label: str) -> Period:
    """'YYYY-MM' → that month's period; refuses anything else."""
    label = (label or "").strip()
    if not re.fullmatch(PERIOD_PATTERN, label):
        raise ServiceError(gettext("A period is written YYYY-MM, e.g. 2025-01."), code="invalid_period")
    year, month = label.split("-")
    return month_period(datetime(int(year), int(month), 1, tzinfo=UTC))
