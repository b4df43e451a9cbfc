"""Scaling plans, as pure functions: which phase a moment is in and how many warm desktops the plan asks for.

A plan is wall-clock time in the tenant's time zone: phases start at local times, so a 07:00 ramp-up is 07:00
in winter and in summer. Callers convert the UTC instant with `local_moment` first; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

RAMP_UP, PEAK, RAMP_DOWN, OFF_PEAK = "ramp_up", "peak", "ramp_down", "off_peak"
PHASES = (RAMP_UP, PEAK, RAMP_DOWN, OFF_PEAK)
PHASE_LABELS = {RAMP_UP: _("Ramp-up"), PEAK: _("Peak"), RAMP_DOWN: _("Ramp-down"), OFF_PEAK: _("Off-peak")}
# One sentence per phase: a phase's name inside a sentence changes its form in other languages.
LATER_THAN = {
    RAMP_UP: _("Must be later than the ramp-up start."),
    PEAK: _("Must be later than the peak start."),
    RAMP_DOWN: _("Must be later than the ramp-down start."),
    OFF_PEAK: _("Must be later than the off-peak start."),
}
# Phases in which surplus warm desktops may be released: the day's demand is behind us.
RELEASING_PHASES = frozenset({RAMP_DOWN, OFF_PEAK})
WEEKDAYS = (1, 2, 3, 4, 5, 6, 7)  # ISO: Monday is 1
WEEKDAY_LABELS = {1: _("Mon"), 2: _("Tue"), 3: _("Wed"), 4: _("Thu"), 5: _("Fri"), 6: _("Sat"), 7: _("Sun")}


@dataclass(frozen=True)
class Minimum:
    """A number of warm desktops, or a percentage of the pool's people."""

    value: int
    percent: bool = False

    def resolve(self, people: int) -> int:
        if self.percent:
            return math.ceil(max(0, people) * self.value / 100)
        return self.value


@dataclass(frozen=True)
class Phase:
    name: str
    start: time
    minimum: Minimum


@dataclass(frozen=True)
class Closure:
    """Whole days (a holiday, a closing week): off-peak all day, with their own minimum."""

    first_day: date
    last_day: date
    minimum: Minimum

    def covers(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


@dataclass(frozen=True)
class Slot:
    """A weekly recurring window (a class at 14:00 on Tuesdays) that raises the minimum while it lasts."""

    weekday: int
    start: time
    end: time
    minimum: Minimum

    def covers(self, moment: datetime) -> bool:
        return moment.isoweekday() == self.weekday and self.start <= moment.time() < self.end


@dataclass(frozen=True)
class Plan:
    """Phases in PHASES order on the plan's weekdays; other days are off-peak all day."""

    phases: tuple[Phase, ...]
    days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    closures: tuple[Closure, ...] = ()
    slots: tuple[Slot, ...] = ()
    release_idle: bool = False

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)


@dataclass(frozen=True)
class Planned:
    """What the plan asks at one moment, and why (`phase`, `closure` or `slot`)."""

    phase: str
    minimum: int
    reason: str
    release_idle: bool


def local_moment(instant: datetime, time_zone: str) -> datetime:
    """The aware UTC instant as wall-clock time in the tenant's zone."""
    return instant.astimezone(ZoneInfo(time_zone))


def phase_at(plan: Plan, moment: datetime) -> Phase:
    """The phase in force at a local moment: the last one started today, else the off-peak since last night."""
    current = plan.phase(OFF_PEAK)
    if moment.isoweekday() not in plan.days:
        return current
    now = moment.time()
    for phase in plan.phases:
        if phase.start <= now:
            current = phase
    return current


def closure_on(plan: Plan, day: date) -> Closure | None:
    return next((c for c in plan.closures if c.covers(day)), None)


def planned_at(plan: Plan, moment: datetime, *, people: int) -> Planned:
    """The warm desktops the plan asks for at a local moment, with a closure winning over the day's phases."""
    closure = closure_on(plan, moment.date())
    if closure is not None:
        return Planned(OFF_PEAK, closure.minimum.resolve(people), "closure", plan.release_idle)
    phase = phase_at(plan, moment)
    minimum, reason = phase.minimum.resolve(people), "phase"
    for slot in plan.slots:
        if slot.covers(moment) and slot.minimum.resolve(people) > minimum:
            minimum, reason = slot.minimum.resolve(people), "slot"
    return Planned(phase.name, minimum, reason, plan.release_idle and phase.name in RELEASING_PHASES)


def day_series(plan: Plan, day: date, *, people: int, step_minutes: int = 15) -> list[tuple[time, Planned]]:
    """The plan across one local day, every `step_minutes` (wall-clock), for the day chart."""
    start = datetime.combine(day, time(0))
    steps = 24 * 60 // step_minutes
    return [
        ((moment := start + timedelta(minutes=i * step_minutes)).time(), planned_at(plan, moment, people=people))
        for i in range(steps)
    ]


# Validation: messages by field name, so the form and the API answer field errors with the same words.


def phase_order_errors(starts: dict[str, time | None]) -> dict[str, str]:
    """Each phase must start after the one before it, within the day (off-peak runs on past midnight)."""
    errors: dict[str, str] = {}
    previous: tuple[str, time] | None = None
    for name in PHASES:
        start = starts.get(name)
        if start is None:
            continue
        if previous is not None and start <= previous[1]:
            errors[f"{name}_start"] = str(LATER_THAN[previous[0]])
        previous = (name, start)
    return errors


def minimum_errors(value: int | None, percent: bool, *, field: str, max_size: int | None = None) -> dict[str, str]:
    if value is None:
        return {}
    if percent and value > 100:
        return {field: gettext("A percentage is at most 100.")}
    if not percent and max_size is not None and value > max_size:
        return {
            field: gettext("Must not be more than the pool's maximum size (%(max_size)s).") % {"max_size": max_size}
        }
    return {}


def minutes_errors(value: int | None, *, field: str, most: int) -> dict[str, str]:
    """Minutes of notice or deferral: a whole number from 0 (none) to `most`."""
    if value is None:
        return {}
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        return {field: f"Whole minutes from 0 (none) to {most}."}
    return {}


def slot_errors(slot: Slot, others: Iterable[Slot]) -> dict[str, str]:
    """A slot ends after it starts, and does not overlap another slot of the same weekday."""
    if slot.end <= slot.start:
        return {"end_time": gettext("Must be later than the start.")}
    for other in others:
        if other.weekday == slot.weekday and slot.start < other.end and other.start < slot.end:
            day = WEEKDAY_LABELS[slot.weekday]
            return {
                "start_time": gettext("Overlaps the %(day)s slot %(start)s to %(end)s.")
                % {"day": day, "start": f"{other.start:%H:%M}", "end": f"{other.end:%H:%M}"}
            }
    return {}


def closure_errors(closure: Closure, others: Iterable[Closure]) -> dict[str, str]:
    """A closure's last day is not before its first, and closures do not overlap."""
    if closure.last_day < closure.first_day:
        return {"last_day": gettext("Must not be before the first day.")}
    if closure.last_day - closure.first_day > timedelta(days=366):
        return {"last_day": gettext("A closure spans at most a year.")}
    for other in others:
        if closure.first_day <= other.last_day and other.first_day <= closure.last_day:
            return {
                "first_day": gettext("Overlaps the closure %(first_day)s to %(last_day)s.")
                % {"first_day": other.first_day, "last_day": other.last_day}
            }
    return {}


def chart_points(series: Sequence[tuple[time, int]], *, width: int, height: int, top: int) -> str:
    """SVG polyline points of a step chart (values 0..top) across the width."""
    if not series:
        return ""
    step = width / len(series)
    scale = height / max(1, top)
    points: list[str] = []
    for i, (_at, value) in enumerate(series):
        y = height - value * scale
        points.append(f"{i * step:.1f},{y:.1f}")
        points.append(f"{(i + 1) * step:.1f},{y:.1f}")
    return " ".join(points)
