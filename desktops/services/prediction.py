"""Demand prediction, as pure functions: an hour-of-week claim profile and the warm desktops it calls for.

The profile has one rate per 15-minute slot of each weekday (a 9 o'clock rush is sharper than an hour), learned
from local claim times with recent weeks weighing more, and with closed days (holidays) left out of both the
counts and the days they are averaged over. How many to hold is a quantile of the arrivals expected
while a replacement is on its way: a claim finds a warm desktop when no more people arrive within one refill
lead time than are warm; the quantile is a negative binomial's where the history varies more than Poisson.
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
SMOOTH_SLOTS = 2  # half an hour either side
# A quantile above this many arrivals is a bug or a flood: the answer is bounded by the pool anyway.
MAX_QUANTILE = 100_000


@dataclass(frozen=True)
class Profile:
    """Expected claims per slot, per ISO weekday (1..7): rates[weekday][slot]; and how much they vary.

    `spreads[weekday][slot]` is the variance of a day's count in that slot, plus the uncertainty of the mean
    learned from a few weeks: what a Poisson law alone would miss (some days are busier, four Mondays are few).
    """

    rates: dict[int, tuple[float, ...]]
    spreads: dict[int, tuple[float, ...]] | None = None

    def rate(self, moment: datetime) -> float:
        """Expected claims in the slot `moment` falls in."""
        return self.rates[moment.isoweekday()][slot_of(moment)]

    def _over(self, start: datetime, minutes: float, of: dict[int, tuple[float, ...]]) -> float:
        # Values are spread evenly within their slot.
        total, moment, left = 0.0, start, minutes
        while left > 1e-9:
            into = moment.hour * 60 + moment.minute + moment.second / 60 - slot_of(moment) * SLOT_MINUTES
            span = min(left, SLOT_MINUTES - into)
            total += of[moment.isoweekday()][slot_of(moment)] * span / SLOT_MINUTES
            moment, left = moment + timedelta(minutes=span), left - span
        return total

    def expected(self, start: datetime, minutes: float) -> float:
        """Expected claims from `start` over `minutes`."""
        return self._over(start, minutes, self.rates)

    def variance(self, start: datetime, minutes: float) -> float:
        """Variance of the claims from `start` over `minutes`; at least the Poisson law's (the mean)."""
        mean = self.expected(start, minutes)
        if self.spreads is None:
            return mean
        return max(mean, self._over(start, minutes, self.spreads))


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
    smooth_slots: int = SMOOTH_SLOTS,
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
    counts: dict[date, list[int]] = {day: [0] * SLOTS_PER_DAY for day in weights}
    for moment in claims:
        if moment.date() in counts:
            counts[moment.date()][slot_of(moment)] += 1
    rates: dict[int, tuple[float, ...]] = {}
    spreads: dict[int, tuple[float, ...]] = {}
    for weekday in range(1, 8):
        days = [day for day in weights if day.isoweekday() == weekday]
        total = sum(weights[day] for day in days)
        if not total:
            rates[weekday] = spreads[weekday] = (0.0,) * SLOTS_PER_DAY
            continue
        # Kish's effective number of days: four weeks with a one-week half-life count as fewer than four.
        effective = total**2 / sum(weights[day] ** 2 for day in days)
        means, variances = [], []
        for slot in range(SLOTS_PER_DAY):
            mean = sum(weights[day] * counts[day][slot] for day in days) / total
            spread = sum(weights[day] * (counts[day][slot] - mean) ** 2 for day in days) / total
            means.append(mean)
            # The day-to-day spread, and the uncertainty of a mean of `effective` days (at least Poisson's).
            variances.append(spread + max(spread, mean) / effective)
        rates[weekday], spreads[weekday] = _fill(means, smooth_slots), _fill(variances, smooth_slots)
    return Profile(rates, spreads)


def _fill(values: list[float], reach: int) -> tuple[float, ...]:
    """Each slot at least the mean of its neighbourhood: sparse evening claims land in a different quarter hour
    each week, and a slot that happened to see none is not a slot where none come. Peaks stay as they are."""
    if reach <= 0:
        return tuple(values)
    size = len(values)
    filled = []
    for slot, value in enumerate(values):
        around = values[max(0, slot - reach) : min(size, slot + reach + 1)]
        filled.append(max(value, sum(around) / len(around)))
    return tuple(filled)


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


def count_quantile(mean: float, variance: float, probability: float) -> int:
    """The least k with P(N <= k) >= probability: Poisson when the variance is the mean's, else negative binomial."""
    if mean <= 0:
        return 0
    if variance <= mean * (1 + 1e-9):
        return poisson_quantile(mean, probability)
    # Negative binomial with this mean and variance: r successes, success probability p.
    p = mean / variance
    r = mean * p / (1 - p)
    log_term = r * math.log(p)
    if log_term < -700:
        z = _normal_quantile(probability)
        return min(MAX_QUANTILE, math.ceil(mean + z * math.sqrt(variance)))
    term = math.exp(log_term)
    k, cumulative = 0, term
    while cumulative < probability and k < MAX_QUANTILE:
        term *= (k + r) / (k + 1) * (1 - p)
        k += 1
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
    later = moment + timedelta(minutes=lead_minutes)
    return max(
        count_quantile(profile.expected(at, lead_minutes), profile.variance(at, lead_minutes), probability)
        for at in (moment, later)
    )


def hourly(profile: Profile, start: datetime, hours: int) -> list[float]:
    """Expected claims per hour from `start`, for the predicted-vs-actual chart."""
    return [profile.expected(start + timedelta(hours=h), 60) for h in range(hours)]
