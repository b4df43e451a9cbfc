"""Demand prediction, as pure functions: an hour-of-week claim profile and the warm desktops it calls for.

The profile has one rate per 15-minute slot of each weekday (a 9 o'clock rush is sharper than an hour), learned
from local claim times with recent weeks weighing more, and with closed days (holidays) left out of both the
counts and the days they are averaged over. How many to hold is a Poisson quantile of the arrivals expected
while a replacement is on its way: a claim finds a warm desktop when no more people arrive within one refill
lead time than are warm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

SLOT_MINUTES = 15
SLOTS_PER_DAY = 24 * 60 // SLOT_MINUTES
HISTORY_WEEKS = 4
HALF_LIFE_WEEKS = 1.0
# A quantile above this many arrivals is a bug or a flood: the answer is bounded by the pool anyway.
MAX_QUANTILE = 100_000


@dataclass(frozen=True)
class Profile:
    """Expected claims per slot, per ISO weekday (1..7): rates[weekday][slot]."""

    rates: dict[int, tuple[float, ...]]

    def rate(self, moment: datetime) -> float:
        """Expected claims in the slot `moment` falls in."""
        return self.rates[moment.isoweekday()][slot_of(moment)]

    def expected(self, start: datetime, minutes: float) -> float:
        """Expected claims from `start` over `minutes` (rates are spread evenly within their slot)."""
        total, moment, left = 0.0, start, minutes
        while left > 1e-9:
            into = moment.hour * 60 + moment.minute + moment.second / 60 - slot_of(moment) * SLOT_MINUTES
            span = min(left, SLOT_MINUTES - into)
            total += self.rate(moment) * span / SLOT_MINUTES
            moment, left = moment + timedelta(minutes=span), left - span
        return total


EMPTY = Profile({day: (0.0,) * SLOTS_PER_DAY for day in range(1, 8)})


def slot_of(moment: datetime) -> int:
    return (moment.hour * 60 + moment.minute) // SLOT_MINUTES


def build_profile(
    claims: Iterable[datetime],
    *,
    today: date,
    since: date | None = None,
    closed: Callable[[date], bool] = lambda day: False,
    weeks: int = HISTORY_WEEKS,
    half_life_weeks: float = HALF_LIFE_WEEKS,
) -> Profile:
    """The profile from local claim times on the `weeks` weeks of days before `today`.

    `since` is the first day with history (a new pool has fewer weeks); `closed` says which days were closed,
    so a holiday's empty morning does not drag the weekday down.
    """
    first = today - timedelta(days=7 * weeks)
    if since is not None and since > first:
        first = since
    weights: dict[date, float] = {}
    day = first
    while day < today:
        if not closed(day):
            age_weeks = (today - day).days / 7
            weights[day] = 0.5 ** (age_weeks / half_life_weeks)
        day += timedelta(days=1)
    sums = {weekday: [0.0] * SLOTS_PER_DAY for weekday in range(1, 8)}
    for moment in claims:
        weight = weights.get(moment.date())
        if weight is not None:
            sums[moment.isoweekday()][slot_of(moment)] += weight
    totals = dict.fromkeys(range(1, 8), 0.0)
    for day, weight in weights.items():
        totals[day.isoweekday()] += weight
    return Profile(
        {
            weekday: tuple(s / totals[weekday] if totals[weekday] else 0.0 for s in sums[weekday])
            for weekday in range(1, 8)
        }
    )


def poisson_quantile(mean: float, probability: float) -> int:
    """The least k with P(N <= k) >= probability for N ~ Poisson(mean)."""
    if mean <= 0:
        return 0
    term = math.exp(-mean) if mean < 700 else 0.0
    if term == 0.0:
        # Far beyond what exp() can hold: the normal approximation is exact enough there.
        z = _normal_quantile(probability)
        return min(MAX_QUANTILE, math.ceil(mean + z * math.sqrt(mean)))
    k, cumulative = 0, term
    while cumulative < probability and k < MAX_QUANTILE:
        k += 1
        term *= mean / k
        cumulative += term
    return k


def _normal_quantile(probability: float) -> float:
    # Bisection on the error function: a few dozen steps, no table.
    low, high = -10.0, 10.0
    for _ in range(80):
        middle = (low + high) / 2
        if 0.5 * (1 + math.erf(middle / math.sqrt(2))) < probability:
            low = middle
        else:
            high = middle
    return high


def warm_needed(profile: Profile, moment: datetime, *, lead_minutes: int, probability: float) -> int:
    """Warm desktops to hold at `moment` so a claim finds one with `probability`.

    What is warm now covers the claims before a replacement made now is ready (the next lead time); what is
    made now must cover the lead time after that. Both windows count, so a rush is met before it starts.
    """
    now = profile.expected(moment, lead_minutes)
    then = profile.expected(moment + timedelta(minutes=lead_minutes), lead_minutes)
    return max(poisson_quantile(now, probability), poisson_quantile(then, probability))


def hourly(profile: Profile, start: datetime, hours: int) -> list[float]:
    """Expected claims per hour from `start`, for the predicted-vs-actual chart."""
    return [profile.expected(start + timedelta(hours=h), 60) for h in range(hours)]
