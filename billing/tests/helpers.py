"""Small builders for billing tests: ledger rows at given times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from billing.models import UsageInterval
from billing.services import ledger
from desktops.choices import DesktopState
from desktops.models import Desktop


def at(text: str) -> datetime:
    """'2025-01-02 10:59:59.900' in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run(desktop: Desktop, start: str, end: str | None = None) -> None:
    """Record that the desktop ran from start to end (or is still running)."""
    ledger.open_interval(desktop_id=desktop.pk, at=at(start))
    if end is not None:
        ledger.close_open_intervals(desktop_id=desktop.pk, at=at(end), ended_by="stopping")


def rows(desktop: Desktop) -> list[tuple[str, str | None, int | None, Decimal, Decimal | None]]:
    """The desktop's ledger as (start, end, seconds, price, amount), oldest first."""
    return [
        (
            r.started_at.strftime("%H:%M:%S"),
            r.ended_at.strftime("%H:%M:%S") if r.ended_at else None,
            r.seconds,
            r.price_per_hour,
            r.amount,
        )
        for r in UsageInterval.objects.filter(desktop=desktop).order_by("started_at", "pk")
    ]


def ran(desktop: Desktop, start: datetime, end: datetime) -> None:
    """Record a closed run between two datetimes."""
    ledger.open_interval(desktop_id=desktop.pk, at=start)
    ledger.close_open_intervals(desktop_id=desktop.pk, at=end, ended_by=DesktopState.STOPPING)


def ledger_millionths(**filters) -> int:
    """The ledger's cost as the meter counts it (millionths of the currency)."""
    return sum(int(r.amount * 1_000_000) for r in UsageInterval.objects.closed().filter(**filters))
