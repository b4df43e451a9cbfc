"""The usage ledger: open an interval when a desktop starts running, close it when it stops.

Every closed row is cut at hour boundaries and price changes, so each row lies within one hour
at one price and is never changed again. Opening and closing are idempotent and guarded: the
database allows one open interval per desktop, and a close only wins on a row still open.
Regular opens and closes are not audited (they are the ledger itself); repairs are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from billing import conf
from billing.choices import EndedBy
from billing.models import UsageInterval
from billing.periods import amount_for, floor_hour, hour_boundaries, seconds_between, to_second
from billing.services import prices
from desktops.choices import DesktopState
from desktops.models import Desktop
from desktops.services import sizes
from hosts.choices import HostState
from tenants import events

log = logging.getLogger(__name__)

# A running desktop found without an open interval is charged from when it started running, but
# never from further back than this: older time predates the ledger (billing just switched on).
REPAIR_LOOKBACK = timedelta(hours=1)


@dataclass(frozen=True)
class Segment:
    """A stretch within one hour at one price."""

    start: datetime
    end: datetime
    price_per_hour: Decimal

    @property
    def seconds(self) -> int:
        return seconds_between(self.start, self.end)

    @property
    def amount(self) -> Decimal:
        return amount_for(self.seconds, self.price_per_hour)


@dataclass
class RepairReport:
    """What a repair pass changed."""

    closed: list[int] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)


def segments(row: UsageInterval, end: datetime) -> list[Segment]:
    """The row's time up to `end`, cut at every hour boundary and price change."""
    end = max(to_second(end), row.started_at)
    cuts = set(hour_boundaries(row.started_at, end))
    cuts.update(prices.change_times(template_id=row.template_id, start=row.started_at, end=end))
    points = [row.started_at, *sorted(cuts), end]
    found = []
    for start, stop in pairwise(points):
        # The first stretch keeps the price recorded at opening: the price in force when it began.
        # Later stretches: the template's price then, plus what the row's size adds (a resize cuts the row,
        # so one row has one size).
        price = (
            row.price_per_hour
            if start == row.started_at
            else _sized(
                prices.price_at(
                    template_id=row.template_id,
                    at=start,
                    fallback=row.price_per_hour - row.size_extra_per_hour,
                ),
                row.size_extra_per_hour,
            )
        )
        found.append(Segment(start=start, end=stop, price_per_hour=price))
    return found


def _sized(base: Decimal, extra: Decimal) -> Decimal:
    """A size's price per hour from the template's: never below zero."""
    return max(base + extra, Decimal(0))


def _copy(row: UsageInterval) -> dict:
    return {
        "tenant_id": row.tenant_id,
        "desktop_id": row.desktop_id,
        "desktop_name": row.desktop_name,
        "user_id": row.user_id,
        "person_email": row.person_email,
        "template_id": row.template_id,
        "template_name": row.template_name,
        "currency": row.currency,
        "size_label": row.size_label,
        "size_extra_per_hour": row.size_extra_per_hour,
    }


def _close_row(row: UsageInterval, end: datetime, ended_by: str) -> bool:
    """Close one open row at `end` (never before its start); False when someone closed it first."""
    parts = segments(row, end)
    first, rest = parts[0], parts[1:]
    won = UsageInterval.objects.filter(pk=row.pk, ended_at__isnull=True).update(
        ended_at=first.end,
        seconds=first.seconds,
        amount=first.amount,
        price_per_hour=first.price_per_hour,
        ended_by=EndedBy.SPLIT if rest else ended_by,
    )
    if not won:
        return False
    for index, part in enumerate(rest, start=1):
        UsageInterval.objects.create(
            **_copy(row),
            started_at=part.start,
            ended_at=part.end,
            seconds=part.seconds,
            amount=part.amount,
            price_per_hour=part.price_per_hour,
            ended_by=ended_by if index == len(rest) else EndedBy.SPLIT,
        )
    return True


def _new_open_row(desktop: Desktop, start: datetime, like: UsageInterval | None = None) -> UsageInterval | None:
    """Create the desktop's open row; None when one exists already (the constraint decided)."""
    template = desktop.template
    size = sizes.of_desktop(desktop)
    extra = like.size_extra_per_hour if like is not None else sizes.extra_per_hour(template, size)
    fallback = like.price_per_hour - like.size_extra_per_hour if like is not None else template.price_per_hour
    values: dict[str, Any] = (
        _copy(like)
        if like is not None
        else {
            "tenant_id": desktop.tenant_id,
            "desktop_id": desktop.pk,
            "desktop_name": desktop.name[:100],
            "user_id": desktop.user_id,
            "person_email": desktop.user.email if desktop.user is not None else "",
            "template_id": template.pk,
            "template_name": template.name[:100],
            "currency": conf.currency(),
            "size_label": size.label[:100],
            "size_extra_per_hour": extra,
        }
    )
    try:
        with transaction.atomic():
            return UsageInterval.objects.create(
                **values,
                started_at=start,
                price_per_hour=_sized(
                    prices.price_at(template_id=values["template_id"], at=start, fallback=fallback), extra
                ),
            )
    except IntegrityError:
        return None


def open_interval(*, desktop_id: int, at: datetime) -> UsageInterval | None:
    """The desktop started running at `at`: open its interval (or return the one already open)."""
    if not conf.billing_enabled():
        return None
    desktop = Desktop.objects.select_related("template", "user").filter(pk=desktop_id).first()
    if desktop is None:
        return None
    with transaction.atomic():
        existing = UsageInterval.objects.open().filter(desktop_id=desktop_id).first()
        if existing is not None:
            return existing
        # Never overlap what is already recorded: the same second is never charged twice.
        last_end = UsageInterval.objects.closed().filter(desktop_id=desktop_id).aggregate(end=Max("ended_at"))["end"]
        start = to_second(at) if last_end is None else max(to_second(at), last_end)
        return _new_open_row(desktop, start) or UsageInterval.objects.open().filter(desktop_id=desktop_id).first()


def close_open_intervals(*, desktop_id: int, at: datetime, ended_by: str = EndedBy.REPAIR) -> int:
    """The desktop stopped running at `at` (as libvirt, reconcile or the state machine says): close.

    Idempotent: with nothing open it does nothing. Reconcile may call it with the earlier time it
    knows the VM really stopped; the state change that follows then finds nothing left to close.
    """
    with transaction.atomic():
        rows = list(UsageInterval.objects.select_for_update().open().filter(desktop_id=desktop_id))
        return sum(_close_row(row, at, ended_by) for row in rows)


def cut_at_resize(*, desktop_id: int, at: datetime) -> UsageInterval | None:
    """The desktop's new size applies from `at`: close its open row there and open the next at the new price.

    Nothing is open (the desktop was stopped): nothing to cut; its next start opens a row at the new size.
    """
    if not conf.billing_enabled():
        return None
    with transaction.atomic():
        if not close_open_intervals(desktop_id=desktop_id, at=at, ended_by=EndedBy.RESIZE):
            return None
        return open_interval(desktop_id=desktop_id, at=at)


def close_host_intervals(*, host_id: int, at: datetime, ended_by: str = EndedBy.HOST_DOWN) -> int:
    """A host went down (last heard from at `at`): close every interval of desktops on it."""
    with transaction.atomic():
        rows = list(UsageInterval.objects.select_for_update().open().filter(desktop__host_id=host_id))
        closed = sum(_close_row(row, at, ended_by) for row in rows)
        if closed:
            events.billing_host_down_closed(host_id=host_id, at=at, intervals=closed)
    return closed


def split_open_intervals(*, at: datetime) -> int:
    """Close every open row at the last hour boundary and continue it in a new open row.

    Long-running desktops are thus reported hour by hour, and usage lands in the month it ran.
    """
    boundary = floor_hour(at)
    split = 0
    for row_id in UsageInterval.objects.open().filter(started_at__lt=boundary).values_list("pk", flat=True):
        with transaction.atomic():
            row = UsageInterval.objects.select_for_update().open().filter(pk=row_id).first()
            if row is None or not _close_row(row, boundary, EndedBy.SPLIT):
                continue
            desktop = Desktop.objects.select_related("template", "user").filter(pk=row.desktop_id).first()
            if desktop is not None:
                _new_open_row(desktop, boundary, like=row)
            split += 1
    return split


def repair_open_intervals(*, now: datetime | None = None, host_id: int | None = None) -> RepairReport:
    """Make the ledger match the desktops after a crash between a state change and its ledger write.

    Open rows of desktops no longer running are closed when the desktop left running; rows of
    desktops on a down host are closed when the host was last heard from; running desktops with
    no open row get one. Reconcile may call it per host; the billing beat calls it for all.
    """
    report = RepairReport()
    if not conf.billing_enabled():
        return report
    now = to_second(now or timezone.now())
    rows = UsageInterval.objects.open().select_related("desktop", "desktop__host")
    if host_id is not None:
        rows = rows.filter(desktop__host_id=host_id)
    for row in rows:
        desktop = row.desktop
        if desktop is None:
            at, ended_by = now, EndedBy.REPAIR
        elif desktop.state != DesktopState.RUNNING:
            at, ended_by = desktop.state_changed_at, EndedBy.REPAIR
        elif desktop.host is not None and desktop.host.state == HostState.DOWN:
            at, ended_by = desktop.host.last_heartbeat_at or now, EndedBy.HOST_DOWN
        else:
            continue
        with transaction.atomic():
            if _close_row(row, at, ended_by):
                report.closed.append(row.pk)
                events.usage_interval_closed_by_repair(interval=row, closed_at=to_second(at), why=ended_by)
    running = Desktop.objects.filter(state=DesktopState.RUNNING).exclude(host__state=HostState.DOWN)
    if host_id is not None:
        running = running.filter(host_id=host_id)
    running = running.exclude(pk__in=UsageInterval.objects.open().filter(desktop__isnull=False).values("desktop_id"))
    for desktop in running.select_related("template", "user"):
        start = _restart_time(desktop, now)
        row = open_interval(desktop_id=desktop.pk, at=start)
        if row is not None:
            report.opened.append(row.pk)
            events.usage_interval_opened_by_repair(interval=row)
    return report


def _restart_time(desktop: Desktop, now: datetime) -> datetime:
    """When to charge a running desktop from, when its open interval went missing."""
    last = UsageInterval.objects.closed().filter(desktop_id=desktop.pk).order_by("-ended_at").first()
    since = desktop.running_since or desktop.state_changed_at
    if last is not None and last.ended_by == EndedBy.HOST_DOWN and last.ended_at >= to_second(since):
        return now  # its host was down: the time until it came back is not charged
    start = max(to_second(since), now - REPAIR_LOOKBACK)
    return start if last is None else max(start, last.ended_at)
