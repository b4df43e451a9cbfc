"""Desktop-hours per day for a tenant: from a registered record of running time (billing's ledger), else operations."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Q
from django.utils import timezone

from desktops.choices import DesktopState, OperationKind, OperationStatus
from desktops.models import Desktop, Operation
from desktops.state import ACTIONS

# Operations whose success leaves the desktop running, and those whose success ends a run (lifecycle table).
_STARTS = {kind for kind, action in ACTIONS.items() if action.target == DesktopState.RUNNING}
_ENDS = {
    kind
    for kind, action in ACTIONS.items()
    if DesktopState.RUNNING in action.sources and action.target not in (None, DesktopState.RUNNING)
}

# Running stretches (start, end) of a tenant's desktops since a moment; None when the source has no record.
IntervalSource = Callable[..., list[tuple[datetime, datetime]] | None]
# An app above desktops with a better record of running time (billing's usage ledger) registers it here from
# its AppConfig.ready, so desktops never imports it; operations rebuild the stretches when none answers.
_interval_sources: list[IntervalSource] = []


def register_interval_source(source: IntervalSource) -> None:
    """Let `source(tenant=, since=, now=)` supply running stretches ahead of the operations' rebuild."""
    if source not in _interval_sources:
        _interval_sources.append(source)


@dataclass(frozen=True)
class DayHours:
    day: date
    hours: float


def day_start(day: date) -> datetime:
    """Midnight starting `day` in the current time zone."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def spread_over_days(intervals: Iterable[tuple[datetime, datetime]], *, first: date, last: date) -> list[DayHours]:
    """Sum (start, end) intervals into hours per calendar day from first to last inclusive."""
    seconds: dict[date, float] = {}
    window_start, window_end = day_start(first), day_start(last + timedelta(days=1))
    for start, end in intervals:
        start, end = max(start, window_start), min(end, window_end)
        while start < end:
            day = timezone.localtime(start).date()
            cut = min(end, day_start(day + timedelta(days=1)))
            seconds[day] = seconds.get(day, 0.0) + (cut - start).total_seconds()
            start = cut
    days = (last - first).days + 1
    dates = [first + timedelta(days=n) for n in range(days)]
    return [DayHours(moment, round(seconds.get(moment, 0.0) / 3600, 3)) for moment in dates]


def _starts_run(kind: str, params: dict) -> bool:
    if kind == OperationKind.CREATE:
        # A pool's warm desktop that is hibernated after its first boot ran only for seconds.
        return bool(params.get("start", True)) and not params.get("hibernate_after")
    return kind in _STARTS


def intervals_from_operations(*, tenant, since: datetime, now: datetime) -> list[tuple[datetime, datetime]]:
    """Running stretches rebuilt from succeeded operations; a run still open ends now (or when it stopped)."""
    return [(start, end) for _, start, end in runs_from_operations(tenant=tenant, since=since, now=now)]


def runs_from_operations(*, tenant, since: datetime, now: datetime) -> list[tuple[int, datetime, datetime]]:
    """(desktop id, start, end) of every run since a moment, rebuilt from succeeded operations."""
    desktops = Desktop.objects.for_tenant(tenant).filter(Q(deleted_at__isnull=True) | Q(deleted_at__gte=since))
    current = dict(desktops.values_list("pk", "state"))
    changed = dict(desktops.values_list("pk", "state_changed_at"))
    rows = (
        Operation.objects.for_tenant(tenant)
        .filter(desktop_id__in=list(current), status=OperationStatus.SUCCEEDED, finished_at__isnull=False)
        .filter(kind__in=[OperationKind.CREATE, *_STARTS, *_ENDS])
        .order_by("desktop_id", "finished_at", "id")
        .values_list("desktop_id", "kind", "params", "finished_at")
    )
    intervals: list[tuple[int, datetime, datetime]] = []
    open_since: dict[int, datetime] = {}
    for desktop_id, kind, params, finished_at in rows:
        if finished_at is None:
            continue  # the query already excludes these; this tells the type checker
        if _starts_run(kind, params or {}):
            open_since.setdefault(desktop_id, finished_at)
        elif kind in _ENDS and desktop_id in open_since:
            intervals.append((desktop_id, open_since.pop(desktop_id), finished_at))
    for desktop_id, started in open_since.items():
        # Reconcile may have stopped it without an operation: then the run ended at its last state change.
        end = now if current[desktop_id] == DesktopState.RUNNING else max(started, changed[desktop_id])
        intervals.append((desktop_id, started, end))
    return [(desktop_id, start, end) for desktop_id, start, end in intervals if end > since]


def running_intervals(*, tenant, since: datetime, now: datetime) -> list[tuple[datetime, datetime]]:
    """The first registered source that has a record, else the stretches rebuilt from operations."""
    for source in _interval_sources:
        intervals = source(tenant=tenant, since=since, now=now)
        if intervals is not None:
            return intervals
    return intervals_from_operations(tenant=tenant, since=since, now=now)


def desktop_hours_per_day(*, tenant, days: int = 30, now: datetime | None = None) -> list[DayHours]:
    """Hours the tenant's desktops ran on each of the last `days` days (today included)."""
    now = now or timezone.now()
    last = timezone.localtime(now).date()
    first = last - timedelta(days=days - 1)
    since = day_start(first)
    intervals = running_intervals(tenant=tenant, since=since, now=now)
    return spread_over_days(intervals, first=first, last=last)
