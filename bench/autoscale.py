"""Replay four weeks of synthetic office demand against static pools, a scaling plan, and plan + prediction.

The demand is seeded: ~60 people, a weekday morning rush, a lunch dip (people leave and claim again after
lunch), stragglers through the morning, a few evening and weekend claims, a holiday in the replayed weeks (one
in the history too), and day-to-day noise. Four more weeks before the replay are the history the prediction
starts from; it relearns every simulated midnight from the four weeks before, as `autoscale.profile_for` does.

The decisions are the real ones — `desktops.services.scaling.planned_at` for the plan and
`desktops.services.prediction.build_profile` / `warm_needed` for the prediction, the functions
`autoscale.warm_target` composes — run on a simulated clock minute by minute. Refill itself is simulated: going
through `pools.refill` and the libvirt test driver costs a database transaction and a domain per desktop, and
four weeks of minutes for a dozen policies would take hours on this machine. A new warm desktop is ready
`--lead` minutes after refill asks for it (refill is asked after every claim and every minute, like the claim's
dispatch and the 20 s beat); a claim that finds no warm desktop is a miss (a cold boot).

Prints per policy the claims, warm-hit rate and idle warm-desktop hours (unassigned warm desktops waiting), then
`predicted_hit_rate=… predicted_idle_hours=… static_idle_hours_at_same_hits=…` where the last is the idle hours of
the smallest static pool whose hit rate reaches the prediction's.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from desktops.services import prediction, scaling
from desktops.services.scaling import Closure, Minimum, Phase, Plan

# The replay starts on a Monday; the history is the four weeks before it.
START = date(2026, 5, 4)
HISTORY_DAYS = 28
REPLAY_DAYS = 28
HOLIDAYS = (date(2026, 5, 14), date(2026, 4, 6))  # a Thursday of the replay, a Monday of the history
PEOPLE = 60
STATIC_SIZES = (1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 50, 60)
MAX_SIZE = 80


# ------------------------------------------------------------------------ demand


def _minute(rng: random.Random, centre: float, spread: float, low: float, high: float) -> float:
    return min(high, max(low, rng.gauss(centre, spread)))


def day_demand(day: date, rng: random.Random) -> list[datetime]:
    """Claim times of one day: each is a person asking for a desktop (a pooled one is recycled after use)."""
    base = datetime.combine(day, time(0))
    minutes: list[float] = []
    if day in HOLIDAYS:
        minutes += [rng.uniform(9 * 60, 17 * 60) for _ in range(rng.randint(0, 2))]
    elif day.isoweekday() >= 6:
        minutes += [rng.uniform(9 * 60, 20 * 60) for _ in range(rng.randint(0, 3))]
    else:
        # Some days are busier than others (a deadline, a sick wave): the noise the plan cannot know.
        turnout = min(1.0, max(0.6, rng.gauss(0.88, 0.07)))
        for _ in range(PEOPLE):
            if rng.random() > turnout:
                continue
            kind = rng.random()
            if kind < 0.06:
                arrival = rng.uniform(7 * 60, 8 * 60 + 15)  # early birds
            elif kind < 0.82:
                arrival = _minute(rng, 8 * 60 + 50, 18, 7 * 60 + 45, 10 * 60)  # the rush
            else:
                arrival = rng.uniform(9 * 60 + 30, 12 * 60)  # stragglers
            minutes.append(arrival)
            if arrival < 12 * 60 and rng.random() < 0.45:
                # Lunch: the desktop is given back and a fresh one claimed after.
                minutes.append(_minute(rng, 13 * 60 + 20, 15, 12 * 60 + 45, 14 * 60 + 30))
        minutes += [rng.uniform(18 * 60, 22 * 60) for _ in range(rng.randint(0, 3))]  # the evening
    return sorted(base + timedelta(minutes=m) for m in minutes)


def demand(seed: int) -> tuple[list[datetime], list[datetime]]:
    """(history, replay) claim times."""
    rng = random.Random(seed)
    history = [t for i in range(HISTORY_DAYS) for t in day_demand(START - timedelta(days=HISTORY_DAYS - i), rng)]
    replay = [t for i in range(REPLAY_DAYS) for t in day_demand(START + timedelta(days=i), rng)]
    return history, replay


# ------------------------------------------------------------------------ policies


def _plan(minimums: tuple[int, int, int, int], *, release: bool = True) -> Plan:
    starts = (time(7, 0), time(8, 30), time(16, 0), time(19, 0))
    phases = tuple(
        Phase(name, start, Minimum(value)) for name, start, value in zip(scaling.PHASES, starts, minimums, strict=True)
    )
    closures = tuple(Closure(day, day, Minimum(0)) for day in HOLIDAYS)
    return Plan(phases, closures=closures, release_idle=release)


# What an admin would set by hand for 60 people: most of the rush warm at peak.
OFFICE_PLAN = _plan((6, 12, 2, 0))
# The floor under the prediction: a couple warm through the day, none at night.
FLOOR_PLAN = _plan((1, 2, 1, 0))


@dataclass
class Policy:
    name: str
    target: Callable[[datetime], int]
    release: Callable[[datetime], bool]


def static(size: int) -> Policy:
    return Policy(f"static-{size}", lambda moment: size, lambda moment: False)


def planned(plan: Plan, name: str) -> Policy:
    return Policy(
        name,
        lambda moment: min(MAX_SIZE, scaling.planned_at(plan, moment, people=PEOPLE).minimum),
        lambda moment: scaling.planned_at(plan, moment, people=PEOPLE).release_idle,
    )


class Predicted:
    """Plan + prediction: the profile relearned each midnight from the four weeks of claims before it."""

    def __init__(self, plan: Plan, claims: list[datetime], *, lead: int, probability: float) -> None:
        self.plan, self.claims, self.lead, self.probability = plan, claims, lead, probability
        self.day: date | None = None
        self.profile = prediction.EMPTY

    def target(self, moment: datetime) -> int:
        if moment.date() != self.day:
            self.day = moment.date()
            first = datetime.combine(self.day - timedelta(days=7 * prediction.HISTORY_WEEKS), time(0))
            seen = [t for t in self.claims if first <= t < datetime.combine(self.day, time(0))]
            self.profile = prediction.build_profile(
                seen, today=self.day, closed=lambda day: scaling.closure_on(self.plan, day) is not None
            )
        floor = scaling.planned_at(self.plan, moment, people=PEOPLE)
        if floor.reason == "closure":
            return floor.minimum
        wanted = prediction.warm_needed(self.profile, moment, lead_minutes=self.lead, probability=self.probability)
        return min(MAX_SIZE, max(floor.minimum, wanted))

    def policy(self, name: str) -> Policy:
        return Policy(
            name, self.target, lambda moment: scaling.planned_at(self.plan, moment, people=PEOPLE).release_idle
        )


# ------------------------------------------------------------------------ the replay


@dataclass
class Result:
    name: str
    claims: int
    hits: int
    idle_hours: float

    @property
    def hit_rate(self) -> float:
        return self.hits / self.claims if self.claims else 1.0


def replay(policy: Policy, claims: list[datetime], *, lead: int, days: int = REPLAY_DAYS) -> Result:
    """Minute by minute: warm desktops ready, claims served or missed, refill topped up, surplus released."""
    warm = 0
    pending: list[datetime] = []  # when each desktop on its way becomes warm
    hits = 0
    idle_minutes = 0.0
    index = 0
    moment = datetime.combine(START, time(0))
    end = moment + timedelta(days=days)
    claims = [c for c in claims if c < end]
    # Start as the policy would have left the previous night.
    warm = policy.target(moment)

    def top_up(now: datetime, target: int) -> None:
        missing = target - warm - len(pending)
        pending.extend([now + timedelta(minutes=lead)] * max(0, missing))

    while moment < end:
        ready = [t for t in pending if t <= moment]
        if ready:
            warm += len(ready)
            pending[:] = [t for t in pending if t > moment]
        target = policy.target(moment)
        following = moment + timedelta(minutes=1)
        while index < len(claims) and claims[index] < following:
            if warm > 0:
                warm -= 1
                hits += 1
            index += 1
            top_up(claims[index - 1], target)  # the claim's own refill
        top_up(moment, target)  # the beat's
        if warm > target and policy.release(moment):
            warm = target
        idle_minutes += warm
        moment = following
    return Result(policy.name, len(claims), hits, idle_minutes / 60)


def floor_plan_values(lead: int) -> dict:
    """FLOOR_PLAN as the plan row's fields, with prediction on."""
    values: dict = {"days": "12345", "release_idle": True, "prediction_enabled": True, "lead_minutes": lead}
    for phase in FLOOR_PLAN.phases:
        values[f"{phase.name}_start"] = phase.start
        values[f"{phase.name}_minimum"] = phase.minimum.value
    return values


def real_check(args, history: list[datetime], claims: list[datetime]) -> None:
    """The first days through the real pool code, against the pure replay of the same days."""
    import autoscale_real  # here: Django and PostgreSQL only for this mode

    real = autoscale_real.run(
        history=history,
        claims=claims,
        start=START,
        days=args.real_days,
        lead=args.lead,
        plan_values=floor_plan_values(args.lead),
        holidays=HOLIDAYS,
        people=PEOPLE,
    )
    model = Predicted(FLOOR_PLAN, history + claims, lead=args.lead, probability=args.target)
    pure = replay(model.policy("plan+prediction"), claims, lead=args.lead, days=args.real_days)
    print(
        f"real_days={real.days} real_claims={real.claims} real_hit_rate={real.hit_rate:.3f} "
        f"real_idle_hours={real.idle_hours:.1f} pure_hit_rate_same_days={pure.hit_rate:.3f} "
        f"pure_idle_hours_same_days={pure.idle_hours:.1f} real_failed_operations={real.failed_operations} "
        f"real_seconds={real.seconds:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--lead", type=int, default=10, help="minutes a new warm desktop takes to be ready")
    parser.add_argument("--target", type=float, default=0.95, help="the tenant's warm-hit target probability")
    parser.add_argument(
        "--real-days",
        type=int,
        default=0,
        help="also replay the first N days of plan+prediction through pools.refill/claim on PostgreSQL and the "
        "libvirt test driver (about a minute per day), and compare with the pure replay of the same days",
    )
    args = parser.parse_args()

    history, claims = demand(args.seed)
    print(
        f"people={PEOPLE} replay_days={REPLAY_DAYS} history_days={HISTORY_DAYS} claims={len(claims)} "
        f"lead_minutes={args.lead} target={args.target} seed={args.seed} decisions=pure (scaling, prediction)"
    )
    results = [replay(static(size), claims, lead=args.lead) for size in STATIC_SIZES]
    results.append(replay(planned(OFFICE_PLAN, "plan"), claims, lead=args.lead))
    everything = history + claims
    for plan, name in ((FLOOR_PLAN, "plan+prediction"), (OFFICE_PLAN, "office-plan+prediction")):
        model = Predicted(plan, everything, lead=args.lead, probability=args.target)
        results.append(replay(model.policy(name), claims, lead=args.lead))
    if args.real_days:
        real_check(args, history, claims)
    print(f"{'policy':<24} {'claims':>6} {'hits':>6} {'hit_rate':>8} {'idle_hours':>10}")
    for result in results:
        print(
            f"{result.name:<24} {result.claims:>6} {result.hits:>6} {result.hit_rate:>8.3f} {result.idle_hours:>10.1f}"
        )
    predicted = next(r for r in results if r.name == "plan+prediction")
    statics = [r for r in results if r.name.startswith("static-")]
    same = next((r for r in statics if r.hit_rate >= predicted.hit_rate), None)
    same_hours = f"{same.idle_hours:.1f}" if same else "unreached"
    if same:
        print(f"smallest static pool reaching {predicted.hit_rate:.3f}: {same.name}")
        ratio = predicted.idle_hours / same.idle_hours if same.idle_hours else math.inf
        print(f"idle_ratio={ratio:.3f} goal: hit_rate>=0.95 and idle_ratio<=0.5")
    print(
        f"predicted_hit_rate={predicted.hit_rate:.3f} predicted_idle_hours={predicted.idle_hours:.1f} "
        f"static_idle_hours_at_same_hits={same_hours}"
    )


if __name__ == "__main__":
    main()
