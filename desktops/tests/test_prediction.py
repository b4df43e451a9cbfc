"""Demand prediction as pure functions: the weekly profile, recent weighting, holidays, the Poisson quantile."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

from desktops.services import prediction

MONDAY = date(2026, 3, 2)


def claims_at(day: date, moment: time, count: int) -> list[datetime]:
    return [datetime.combine(day, moment)] * count


def test_it_learns_the_rate_of_each_weekday_slot():
    # Given four Mondays with 6 claims at 09:00 and nothing else
    today = MONDAY + timedelta(days=28)
    history = [c for week in range(4) for c in claims_at(MONDAY + timedelta(days=7 * week), time(9, 5), 6)]
    profile = prediction.build_profile(history, today=today)
    # Then Monday 09:00-09:15 expects 6 claims, Monday 10:00 and Tuesday 09:00 none
    assert math.isclose(profile.rate(datetime.combine(today, time(9, 0))), 6)
    assert profile.rate(datetime.combine(today, time(10))) == 0
    assert profile.rate(datetime.combine(today + timedelta(days=1), time(9))) == 0


def test_it_weighs_recent_weeks_more():
    # Given the same 10 Monday claims, once four weeks ago and once last week
    today = MONDAY + timedelta(days=28)
    moment = datetime.combine(today, time(9))
    old = prediction.build_profile(claims_at(MONDAY, time(9), 10), today=today).rate(moment)
    recent = prediction.build_profile(claims_at(MONDAY + timedelta(days=21), time(9), 10), today=today).rate(moment)
    # Then last week's count weighs eight times as much (a one-week half-life over three weeks)
    assert math.isclose(recent / old, 8)
    assert old < 10 / 4 < recent  # the plain four-week mean lies between


def test_it_leaves_closed_days_out_of_counts_and_averages():
    today = MONDAY + timedelta(days=28)
    holiday = MONDAY + timedelta(days=14)
    history = [c for week in (0, 1, 3) for c in claims_at(MONDAY + timedelta(days=7 * week), time(9), 4)] + claims_at(
        holiday, time(9), 50
    )
    profile = prediction.build_profile(history, today=today, closed=lambda day: day == holiday)
    # The holiday's odd day counts neither its 50 claims nor as an empty Monday: the three others say 4
    assert math.isclose(profile.rate(datetime.combine(today, time(9))), 4)
    plain = prediction.build_profile(history, today=today)
    assert plain.rate(datetime.combine(today, time(9))) > 4


def test_it_averages_a_young_pool_over_the_days_it_had():
    today = MONDAY + timedelta(days=28)
    history = claims_at(MONDAY + timedelta(days=21), time(9), 3)
    young = prediction.build_profile(history, today=today, since=MONDAY + timedelta(days=21))
    assert math.isclose(young.rate(datetime.combine(today, time(9))), 3)


def test_it_integrates_expected_claims_across_slots():
    rates = {day: (0.0,) * prediction.SLOTS_PER_DAY for day in range(1, 8)}
    monday = list(rates[1])
    monday[36] = 4.0  # 09:00-09:15
    monday[37] = 8.0  # 09:15-09:30
    profile = prediction.Profile({**rates, 1: tuple(monday)})
    start = datetime.combine(MONDAY, time(9, 10))
    # 5 minutes of the first slot (4 * 5/15) and 5 of the second (8 * 5/15)
    assert math.isclose(profile.expected(start, 10), 4 / 3 + 8 / 3)
    assert profile.expected(datetime.combine(MONDAY, time(8)), 60) == 0


def test_it_takes_the_poisson_quantile():
    assert prediction.poisson_quantile(0, 0.95) == 0
    # P(N<=0)=0.368, P(N<=2)=0.920, P(N<=3)=0.981 for a mean of 1
    assert prediction.poisson_quantile(1, 0.95) == 3
    assert prediction.poisson_quantile(1, 0.9) == 2
    # Mean 10: P(N<=15)=0.951
    assert prediction.poisson_quantile(10, 0.95) == 15
    # A huge mean answers by the normal approximation, bounded
    assert 10_100 < prediction.poisson_quantile(10_000, 0.95) < 10_200


def test_it_holds_enough_for_the_next_two_lead_times_so_a_rush_is_met_before_it_starts():
    rates = {day: (0.0,) * prediction.SLOTS_PER_DAY for day in range(1, 8)}
    monday = list(rates[1])
    monday[36] = 10.0  # 09:00-09:15
    profile = prediction.Profile({**rates, 1: tuple(monday)})
    # At 08:45 with a 15-minute lead time, the rush is one lead time away: hold for it now
    assert (
        prediction.warm_needed(profile, datetime.combine(MONDAY, time(8, 45)), lead_minutes=15, probability=0.95) == 15
    )
    # At 08:00 nothing is within two lead times
    assert prediction.warm_needed(profile, datetime.combine(MONDAY, time(8)), lead_minutes=15, probability=0.95) == 0


def test_it_widens_the_quantile_when_days_vary_more_than_poisson():
    # Mean 10: Poisson says 15 at 95 %; a variance of 30 (busy and quiet days) asks for more
    assert prediction.count_quantile(10, 10, 0.95) == prediction.poisson_quantile(10, 0.95) == 15
    wider = prediction.count_quantile(10, 30, 0.95)
    assert 18 <= wider <= 20
    assert prediction.count_quantile(0, 5, 0.95) == 0


def test_it_learns_the_day_to_day_spread_of_a_slot():
    # Given Mondays with 2, 10, 2, 10 claims at 09:00: mean 6 (equal weights), spread far above Poisson's
    today = MONDAY + timedelta(days=28)
    history = [
        c
        for week, count in enumerate((2, 10, 2, 10))
        for c in claims_at(MONDAY + timedelta(days=7 * week), time(9), count)
    ]
    profile = prediction.build_profile(history, today=today, half_life_weeks=1e9)
    start = datetime.combine(today, time(9))
    assert math.isclose(profile.expected(start, 15), 6)
    # 16 between the days, plus 16 / 4 for a mean of four days
    assert math.isclose(profile.variance(start, 15), 20)


def test_it_fills_a_quiet_slot_from_its_neighbourhood_but_keeps_peaks():
    # Given one evening claim a week, each week in a different quarter hour
    today = MONDAY + timedelta(days=28)
    history = [datetime.combine(MONDAY + timedelta(days=7 * week), time(19, 15 * week)) for week in range(4)]
    profile = prediction.build_profile(history, today=today, half_life_weeks=1e9)
    # Then 20:00, a slot that saw none, still expects some (within half an hour of 19:30 and 19:45)
    assert profile.rate(datetime.combine(today, time(20))) > 0
    # And 22:00, far from any claim, expects none
    assert profile.rate(datetime.combine(today, time(22))) == 0
    # And a peak keeps its height
    peak = [c for week in range(4) for c in claims_at(MONDAY + timedelta(days=7 * week), time(9), 8)]
    assert math.isclose(prediction.build_profile(peak, today=today).rate(datetime.combine(today, time(9))), 8)
