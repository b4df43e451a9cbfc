"""What the pool's pages and API show of its scaling: the day's planned warm desktops, and last week's demand."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.utils import timezone

from desktops.models import Pool, ScalingPlan
from desktops.services import autoscale, prediction, scaling

CHART_STEP_MINUTES = 15
WEEK_HOURS = 7 * 24


@dataclass(frozen=True)
class DayPoint:
    at: time
    phase: str
    planned: int
    predicted: int | None
    target: int


@dataclass(frozen=True)
class HourPoint:
    start: datetime
    predicted: float
    actual: int


def day_chart(pool: Pool, row: ScalingPlan, day: date) -> list[DayPoint]:
    """The plan (and prediction) across one local day, every quarter hour, bounded like refill bounds it."""
    plan = autoscale.plan_of(row)
    zone = scaling.local_moment(timezone.now(), pool.tenant.time_zone).tzinfo
    people = autoscale.people(pool)
    profile = autoscale.profile_for(pool, plan=plan, today=day) if row.prediction_enabled else None
    probability = pool.tenant.warm_hit_target_percent / 100
    closed = scaling.closure_on(plan, day) is not None
    points = []
    for at, planned in scaling.day_series(plan, day, people=people, step_minutes=CHART_STEP_MINUTES):
        predicted = None
        if profile is not None:
            moment = datetime.combine(day, at, tzinfo=zone)
            predicted = (
                0
                if closed
                else prediction.warm_needed(profile, moment, lead_minutes=row.lead_minutes, probability=probability)
            )
        target = min(pool.max_size, max(planned.minimum, predicted or 0))
        points.append(DayPoint(at, planned.phase, planned.minimum, predicted, target))
    return points


def last_week(pool: Pool, row: ScalingPlan, *, now: datetime | None = None) -> list[HourPoint]:
    """Claims per hour over the last seven days, against what the history before that week predicted."""
    now = now or timezone.now()
    local_now = scaling.local_moment(now, pool.tenant.time_zone)
    zone = local_now.tzinfo
    first_day = local_now.date() - timedelta(days=7)
    start = datetime.combine(first_day, time(0), tzinfo=zone)
    end = datetime.combine(local_now.date(), time(0), tzinfo=zone)
    plan = autoscale.plan_of(row)
    # Predicted as the week began: the profile from the weeks before it, so the chart is a fair test.
    profile = autoscale.profile_for(pool, plan=plan, today=first_day)
    actual = Counter(
        moment.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        for moment in autoscale.demand_times(pool, start=start, end=end)
    )
    points = []
    for hour in range(WEEK_HOURS):
        moment = start + timedelta(hours=hour)
        closed = scaling.closure_on(plan, moment.date()) is not None
        expected = 0.0 if closed else profile.expected(moment, 60)
        points.append(HourPoint(moment, round(expected, 2), actual.get(moment, 0)))
    return points


def chart_svg_bars(values: list[float], *, width: int, height: int, top: float) -> list[tuple[float, float, float]]:
    """(x, y, height) of bars for values 0..top across the width: server-side, so the page needs no script."""
    if not values:
        return []
    step = width / len(values)
    scale = height / max(top, 1)
    return [(round(i * step, 2), round(height - v * scale, 2), round(v * scale, 2)) for i, v in enumerate(values)]
