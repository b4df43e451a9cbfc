"""Scaling plans as pure functions: phase boundaries, time zones and DST, calendar exceptions, validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from desktops.services import scaling
from desktops.services.scaling import Closure, Minimum, Phase, Plan, Slot

PARIS = "Europe/Paris"


def office_plan(**kwargs) -> Plan:
    phases = (
        Phase(scaling.RAMP_UP, time(7, 0), Minimum(2)),
        Phase(scaling.PEAK, time(8, 30), Minimum(5)),
        Phase(scaling.RAMP_DOWN, time(16, 30), Minimum(1)),
        Phase(scaling.OFF_PEAK, time(19, 0), Minimum(0)),
    )
    return Plan(phases, **kwargs)


# 2026-03-02 is a Monday.
MONDAY = date(2026, 3, 2)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute))


@pytest.mark.parametrize(
    ("hour", "minute", "phase", "minimum"),
    [
        (0, 0, scaling.OFF_PEAK, 0),
        (6, 59, scaling.OFF_PEAK, 0),
        (7, 0, scaling.RAMP_UP, 2),
        (8, 29, scaling.RAMP_UP, 2),
        (8, 30, scaling.PEAK, 5),
        (16, 29, scaling.PEAK, 5),
        (16, 30, scaling.RAMP_DOWN, 1),
        (18, 59, scaling.RAMP_DOWN, 1),
        (19, 0, scaling.OFF_PEAK, 0),
        (23, 59, scaling.OFF_PEAK, 0),
    ],
)
def test_it_switches_phase_exactly_at_each_start(hour, minute, phase, minimum):
    planned = scaling.planned_at(office_plan(), at(MONDAY, hour, minute), people=10)
    assert (planned.phase, planned.minimum, planned.reason) == (phase, minimum, "phase")


def test_it_keeps_off_peak_all_day_outside_the_plan_days():
    saturday = date(2026, 3, 7)
    assert scaling.planned_at(office_plan(), at(saturday, 10), people=10).phase == scaling.OFF_PEAK
    weekend_plan = office_plan(days=frozenset({6}))
    assert scaling.planned_at(weekend_plan, at(saturday, 10), people=10).minimum == 5
    assert scaling.planned_at(weekend_plan, at(MONDAY, 10), people=10).minimum == 0


def test_it_resolves_a_percentage_of_the_pool_people_rounding_up():
    plan = Plan(
        (
            Phase(scaling.RAMP_UP, time(7), Minimum(10, percent=True)),
            Phase(scaling.PEAK, time(8), Minimum(50, percent=True)),
            Phase(scaling.RAMP_DOWN, time(16), Minimum(0)),
            Phase(scaling.OFF_PEAK, time(18), Minimum(0)),
        )
    )
    assert scaling.planned_at(plan, at(MONDAY, 7), people=25).minimum == 3  # 2.5 rounds up
    assert scaling.planned_at(plan, at(MONDAY, 9), people=25).minimum == 13
    assert scaling.planned_at(plan, at(MONDAY, 9), people=0).minimum == 0


def test_it_reads_the_plan_on_the_tenant_wall_clock_across_daylight_saving():
    # Given a ramp-up at 07:00 Paris time; 2026-03-29 is when Paris moves from UTC+1 to UTC+2
    plan = office_plan(days=frozenset(range(1, 8)))
    winter = scaling.local_moment(datetime(2026, 3, 28, 6, 0, tzinfo=UTC), PARIS)  # 07:00 CET
    summer = scaling.local_moment(datetime(2026, 3, 30, 5, 0, tzinfo=UTC), PARIS)  # 07:00 CEST
    before_summer = scaling.local_moment(datetime(2026, 3, 30, 4, 59, tzinfo=UTC), PARIS)
    # Then ramp-up starts at 07:00 local on both sides of the change: 06:00 UTC in winter, 05:00 UTC in summer
    assert scaling.planned_at(plan, winter, people=1).phase == scaling.RAMP_UP
    assert scaling.planned_at(plan, summer, people=1).phase == scaling.RAMP_UP
    assert scaling.planned_at(plan, before_summer, people=1).phase == scaling.OFF_PEAK


def test_it_takes_a_phase_whose_start_the_clocks_skip_from_the_next_existing_minute():
    # 02:30 does not exist in Paris on 2026-03-29: at 03:00 local (01:00 UTC) the phase has begun.
    phases = (
        Phase(scaling.RAMP_UP, time(2, 30), Minimum(4)),
        Phase(scaling.PEAK, time(9), Minimum(5)),
        Phase(scaling.RAMP_DOWN, time(16), Minimum(1)),
        Phase(scaling.OFF_PEAK, time(19), Minimum(0)),
    )
    plan = Plan(phases, days=frozenset(range(1, 8)))
    assert (
        scaling.planned_at(
            plan, scaling.local_moment(datetime(2026, 3, 29, 0, 59, tzinfo=UTC), PARIS), people=1
        ).minimum
        == 0
    )
    assert (
        scaling.planned_at(plan, scaling.local_moment(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), PARIS), people=1).minimum
        == 4
    )


def test_it_keeps_a_holiday_off_peak_with_its_own_minimum():
    holiday = Closure(MONDAY, MONDAY, Minimum(1))
    planned = scaling.planned_at(office_plan(closures=(holiday,)), at(MONDAY, 10), people=10)
    assert (planned.phase, planned.minimum, planned.reason) == (scaling.OFF_PEAK, 1, "closure")
    # The day after is an ordinary Tuesday
    assert scaling.planned_at(office_plan(closures=(holiday,)), at(date(2026, 3, 3), 10), people=10).minimum == 5


def test_it_covers_every_day_of_a_closure_range():
    week = Closure(date(2026, 12, 24), date(2026, 12, 31), Minimum(0))
    plan = office_plan(closures=(week,))
    assert scaling.planned_at(plan, at(date(2026, 12, 24), 10), people=9).reason == "closure"
    assert scaling.planned_at(plan, at(date(2026, 12, 31), 10), people=9).reason == "closure"
    assert scaling.planned_at(plan, at(date(2026, 12, 23), 10), people=9).reason == "phase"


def test_it_raises_the_minimum_during_a_weekly_slot_and_never_lowers_it():
    tuesday = date(2026, 3, 3)
    class_at_two = Slot(2, time(14), time(15), Minimum(20))
    quiet_slot = Slot(2, time(10), time(11), Minimum(1))
    plan = office_plan(slots=(class_at_two, quiet_slot))
    assert scaling.planned_at(plan, at(tuesday, 13, 59), people=30).minimum == 5
    planned = scaling.planned_at(plan, at(tuesday, 14), people=30)
    assert (planned.minimum, planned.reason) == (20, "slot")
    assert scaling.planned_at(plan, at(tuesday, 15), people=30).minimum == 5  # the end is exclusive
    assert scaling.planned_at(plan, at(MONDAY, 14), people=30).minimum == 5  # another weekday
    assert scaling.planned_at(plan, at(tuesday, 10, 30), people=30).minimum == 5  # a lower slot keeps the phase's


def test_it_releases_idle_desktops_only_at_ramp_down_and_off_peak_when_asked():
    plan = office_plan(release_idle=True)
    assert not scaling.planned_at(plan, at(MONDAY, 10), people=1).release_idle
    assert scaling.planned_at(plan, at(MONDAY, 17), people=1).release_idle
    assert scaling.planned_at(plan, at(MONDAY, 22), people=1).release_idle
    assert not scaling.planned_at(office_plan(), at(MONDAY, 17), people=1).release_idle


def test_it_charts_a_whole_day_in_quarter_hours():
    series = scaling.day_series(office_plan(), MONDAY, people=1)
    assert len(series) == 96
    by_time = {moment: planned.minimum for moment, planned in series}
    assert by_time[time(6, 45)] == 0 and by_time[time(7)] == 2 and by_time[time(8, 30)] == 5
    assert by_time[time(16, 30)] == 1 and by_time[time(19)] == 0


def test_it_names_each_phase_that_does_not_follow_the_one_before():
    assert (
        scaling.phase_order_errors({"ramp_up": time(7), "peak": time(8), "ramp_down": time(16), "off_peak": time(19)})
        == {}
    )
    errors = scaling.phase_order_errors(
        {"ramp_up": time(9), "peak": time(8), "ramp_down": time(16), "off_peak": time(16)}
    )
    assert set(errors) == {"peak_start", "off_peak_start"}


def test_it_bounds_minimums_by_percent_and_pool_size():
    assert scaling.minimum_errors(101, True, field="peak_minimum") == {"peak_minimum": "A percentage is at most 100."}
    assert scaling.minimum_errors(100, True, field="peak_minimum", max_size=5) == {}
    assert "peak_minimum" in scaling.minimum_errors(6, False, field="peak_minimum", max_size=5)


def test_it_refuses_overlapping_slots_and_closures_and_backwards_ranges():
    existing = [Slot(2, time(14), time(15), Minimum(1))]
    assert "start_time" in scaling.slot_errors(Slot(2, time(14, 30), time(16), Minimum(1)), existing)
    assert scaling.slot_errors(Slot(2, time(15), time(16), Minimum(1)), existing) == {}  # touching is fine
    assert scaling.slot_errors(Slot(3, time(14), time(15), Minimum(1)), existing) == {}
    assert "end_time" in scaling.slot_errors(Slot(2, time(16), time(16), Minimum(1)), [])
    closures = [Closure(date(2026, 12, 24), date(2026, 12, 26), Minimum(0))]
    assert "first_day" in scaling.closure_errors(Closure(date(2026, 12, 26), date(2026, 12, 27), Minimum(0)), closures)
    assert scaling.closure_errors(Closure(date(2026, 12, 27), date(2026, 12, 27), Minimum(0)), closures) == {}
    assert "last_day" in scaling.closure_errors(Closure(date(2026, 12, 27), date(2026, 12, 26), Minimum(0)), [])
    assert "last_day" in scaling.closure_errors(Closure(date(2026, 1, 1), date(2027, 6, 1), Minimum(0)), [])
