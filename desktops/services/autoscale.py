"""A pool's warm target now: its scaling plan, its predicted demand, its bounds; and the plan's edits.

The decisions are in `scaling` (the plan) and `prediction` (the demand); this module reads the rows they need
and writes what the admin changes. Refill asks `warm_target` how many unassigned desktops to hold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext

from desktops import dispatch
from desktops.choices import DesktopState, OperationKind
from desktops.models import Desktop, Pool, ScalingException, ScalingPlan
from desktops.models.scaling import MAX_NOTICE_MINUTES, MinimumUnit
from desktops.services import prediction, quotas, scaling
from desktops.services.requests import request_action
from quetzal.errors import FieldErrors, NotFound, ServiceError
from tenants import events
from tenants.events import AuditAction
from tenants.models import AuditEvent, Membership

PHASE_FIELDS = tuple(f"{phase}_{part}" for phase in scaling.PHASES for part in ("start", "minimum", "unit"))
PLAN_FIELDS = (
    "enabled",
    "days",
    *PHASE_FIELDS,
    "release_idle",
    "stop_in_use",
    "notice_minutes",
    "defer_minutes",
    "prediction_enabled",
    "lead_minutes",
)
EXCEPTION_FIELDS = ("kind", "name", "first_day", "last_day", "weekday", "start_time", "end_time", "minimum", "unit")
MAX_EXCEPTIONS_PER_POOL = 200
PROFILE_CACHE_SECONDS = 15 * 60
GONE = [DesktopState.DELETED, DesktopState.DELETING, DesktopState.ERROR]


@dataclass(frozen=True)
class Target:
    """How many unassigned warm desktops the pool holds now, and where the number came from."""

    warm: int
    planned: int | None
    predicted: int | None
    phase: str | None
    release_idle: bool


# ------------------------------------------------------------------------ reading the plan


def _minimum(value: int, unit: str) -> scaling.Minimum:
    return scaling.Minimum(value, percent=unit == MinimumUnit.PERCENT)


def _closure(row: ScalingException) -> scaling.Closure:
    """A closure row as the pure plan reads it (its kind's checks filled first_day)."""
    assert row.first_day is not None, "a closure is saved with its first day"
    return scaling.Closure(row.first_day, row.last_day or row.first_day, _minimum(row.minimum, row.unit))


def _slot(row: ScalingException) -> scaling.Slot:
    """A weekly slot row as the pure plan reads it (its kind's checks filled weekday and times)."""
    assert row.weekday is not None and row.start_time is not None and row.end_time is not None
    return scaling.Slot(row.weekday, row.start_time, row.end_time, _minimum(row.minimum, row.unit))


def plan_of(row: ScalingPlan, exceptions: list[ScalingException] | None = None) -> scaling.Plan:
    """The pure plan of a plan row and its pool's calendar exceptions."""
    if exceptions is None:
        exceptions = list(ScalingException.objects.filter(pool_id=row.pool_id))
    phases = tuple(
        scaling.Phase(
            name,
            getattr(row, f"{name}_start"),
            _minimum(getattr(row, f"{name}_minimum"), getattr(row, f"{name}_unit")),
        )
        for name in scaling.PHASES
    )
    closures = tuple(_closure(e) for e in exceptions if e.kind == ScalingException.Kind.CLOSURE)
    slots = tuple(_slot(e) for e in exceptions if e.kind == ScalingException.Kind.SLOT)
    days = frozenset(int(c) for c in row.days)
    return scaling.Plan(phases, days=days, closures=closures, slots=slots, release_idle=row.release_idle)


def plan_row(pool: Pool) -> ScalingPlan | None:
    return ScalingPlan.objects.filter(pool=pool).first()


def people(pool: Pool) -> int:
    """The pool's people, whom a percentage minimum is of: the members of its tenant."""
    return Membership.objects.filter(tenant_id=pool.tenant_id).count()


def quota_ceiling(pool: Pool) -> int:
    """The most unassigned desktops the tenant's quotas let the pool hold (as many as it has, plus the room)."""
    tenant, template = pool.tenant, pool.template
    unassigned = Desktop.objects.filter(pool=pool, user__isnull=True).exclude(state__in=GONE).count()
    rooms: list[int] = []
    counted = quotas.counted_desktops(tenant)
    if tenant.quota_desktops:
        rooms.append(tenant.quota_desktops - counted.count())
    if tenant.quota_disk_gib and template.disk_gib:
        held = counted.aggregate(gib=Sum("disk_gib"))["gib"] or 0
        rooms.append((tenant.quota_disk_gib - held) // template.disk_gib)
    if pool.warm_state == Pool.WarmState.RUNNING and (tenant.quota_vcpus or tenant.quota_ram_mib):
        used = quotas.running_desktops(tenant).aggregate(vcpus=Sum("vcpus"), memory=Sum("memory_mib"))
        if tenant.quota_vcpus and template.vcpus:
            rooms.append((tenant.quota_vcpus - (used["vcpus"] or 0)) // template.vcpus)
        if tenant.quota_ram_mib and template.memory_mib:
            rooms.append((tenant.quota_ram_mib - (used["memory"] or 0)) // template.memory_mib)
    room = max(0, min(rooms)) if rooms else pool.max_size
    return min(pool.max_size, unassigned + room)


def warm_target(pool: Pool, *, now: datetime | None = None) -> Target:
    """The unassigned warm desktops to hold now: the plan's minimum, raised by the prediction, within max_size.

    The tenant's quotas bound it too, where refill builds: it stops at the first desktop a quota refuses, and
    `held_back` says why (see `quota_ceiling` for the number).
    """
    row = plan_row(pool)
    if row is None or not row.enabled:
        return Target(min(pool.min_ready, pool.max_size), None, None, None, False)
    plan = plan_of(row)
    local = scaling.local_moment(now or timezone.now(), pool.tenant.time_zone)
    planned = scaling.planned_at(plan, local, people=people(pool))
    predicted = predicted_warm(pool, row=row, plan=plan, local=local) if row.prediction_enabled else None
    wanted = max(planned.minimum, predicted or 0)
    return Target(min(wanted, pool.max_size), planned.minimum, predicted, planned.phase, planned.release_idle)


# ------------------------------------------------------------------------ demand history and prediction


def demand_times(pool: Pool, *, start: datetime, end: datetime) -> list[datetime]:
    """When people asked the pool for a desktop: its claims, and the cold launches of its template it missed."""
    claims = AuditEvent.objects.filter(
        tenant_id=pool.tenant_id,
        action=AuditAction.DESKTOP_CLAIM,
        data__pool=pool.pk,
        created_at__gte=start,
        created_at__lt=end,
    ).values_list("created_at", flat=True)
    # A launch that found no warm desktop made a personal one of the same template: demand the pool missed.
    missed = Desktop.objects.filter(
        tenant_id=pool.tenant_id,
        template_id=pool.template_id,
        pool__isnull=True,
        user__isnull=False,
        created_at__gte=start,
        created_at__lt=end,
    ).values_list("created_at", flat=True)
    return sorted([*claims, *missed])


def profile_for(pool: Pool, *, plan: scaling.Plan, today: date) -> prediction.Profile:
    """The pool's demand profile from the weeks before `today` (local), cached for a quarter hour."""
    # The closures are in the key: a holiday added today changes which days the profile leaves out.
    closures = hashlib.sha256(repr(plan.closures).encode()).hexdigest()[:16]
    key = f"autoscale:profile:{pool.pk}:{today.isoformat()}:{closures}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    zone = scaling.local_moment(timezone.now(), pool.tenant.time_zone).tzinfo
    first = today - timedelta(days=7 * prediction.HISTORY_WEEKS)
    start = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(today, datetime.min.time(), tzinfo=zone)
    local = [moment.astimezone(zone) for moment in demand_times(pool, start=start, end=end)]
    since = timezone.localtime(pool_created(pool), zone).date() if pool_created(pool) else None
    built = prediction.build_profile(
        local, today=today, since=since, closed=lambda day: scaling.closure_on(plan, day) is not None
    )
    cache.set(key, built, PROFILE_CACHE_SECONDS)
    return built


def pool_created(pool: Pool) -> datetime | None:
    """When the pool first had a desktop: the start of its history."""
    first = Desktop.objects.filter(pool=pool).order_by("created_at").values_list("created_at", flat=True).first()
    return first


def predicted_warm(pool: Pool, *, row: ScalingPlan, plan: scaling.Plan, local: datetime) -> int:
    if scaling.closure_on(plan, local.date()) is not None:
        return 0  # closed: nobody is expected, the closure's own minimum holds
    profile = profile_for(pool, plan=plan, today=local.date())
    probability = pool.tenant.warm_hit_target_percent / 100
    return prediction.warm_needed(profile, local, lead_minutes=row.lead_minutes, probability=probability)


# ------------------------------------------------------------------------ releasing surplus at ramp-down


def release_surplus(pool: Pool, target: Target) -> int:
    """At ramp-down and off-peak (if the plan says so), delete unassigned warm desktops beyond the target.

    Deleted rather than stopped: a stopped pooled desktop is neither claimable nor counted out of the pool,
    and ramp-up makes fresh ones from the template.
    """
    if not target.release_idle:
        return 0
    warm = Desktop.objects.filter(pool=pool, user__isnull=True, state=pool.warm_state).order_by("-created_at", "-id")
    surplus = list(warm[target.warm :].values_list("pk", flat=True))
    return sum(release_one(pool, desktop_id) for desktop_id in surplus)


def release_one(pool: Pool, desktop_id: int) -> bool:
    """Delete one warm desktop read as surplus, if it is still unassigned: a claim in between wins."""
    with transaction.atomic():
        # Under the row lock the claim (FOR UPDATE SKIP LOCKED) passes this desktop by; one that committed
        # first has set its user, and the filter finds nothing.
        desktop = (
            Desktop.objects.select_for_update()
            .filter(pk=desktop_id, pool=pool, user__isnull=True, state=pool.warm_state)
            .first()
        )
        if desktop is None:
            return False
        try:
            request_action(desktop=desktop, kind=OperationKind.DELETE, actor=None, params={"reason": "Ramp-down"})
        except ServiceError:
            return False  # busy with another operation: the next pass looks again
    return True


# ------------------------------------------------------------------------ the admin's edits


def _check_plan(values: dict, pool: Pool) -> dict[str, str]:
    errors = scaling.phase_order_errors({name: values.get(f"{name}_start") for name in scaling.PHASES})
    for name in scaling.PHASES:
        field = f"{name}_minimum"
        percent = values.get(f"{name}_unit") == MinimumUnit.PERCENT
        errors.update(scaling.minimum_errors(values.get(field), percent, field=field, max_size=pool.max_size))
    for field in ("notice_minutes", "defer_minutes"):
        errors.update(scaling.minutes_errors(values.get(field), field=field, most=MAX_NOTICE_MINUTES))
    return errors


def save_plan(*, pool: Pool, actor, values: dict) -> ScalingPlan:
    """Create or change the pool's plan; bad times and minimums are field errors (code `invalid_plan`)."""
    unknown = set(values) - set(PLAN_FIELDS)
    if unknown:
        raise ServiceError(
            gettext("Unknown plan fields: %(join)s.") % {"join": ", ".join(sorted(unknown))}, code="invalid_plan"
        )
    with transaction.atomic():
        row = ScalingPlan.objects.select_for_update().filter(pool=pool).first() or ScalingPlan(
            pool=pool, tenant_id=pool.tenant_id
        )
        for key, value in values.items():
            setattr(row, key, value)
        errors = _check_plan({key: getattr(row, key) for key in PLAN_FIELDS}, pool)
        if errors:
            raise FieldErrors(errors, code="invalid_plan")
        row.updated_at = timezone.now()
        row.full_clean()
        row.save()
        events.pool_scaling_changed(actor=actor, pool=pool, change="update", data={"enabled": row.enabled})
    _refill_soon()
    return row


def add_exception(*, pool: Pool, actor, values: dict) -> ScalingException:
    """Add a closure or weekly slot; overlaps and bad ranges are field errors (code `invalid_exception`)."""
    kind = values.get("kind")
    with transaction.atomic():
        # The pool's row lock makes the overlap check and the insert one step.
        Pool.objects.select_for_update().filter(pk=pool.pk).first()
        existing = list(ScalingException.objects.filter(pool=pool))
        if len(existing) >= MAX_EXCEPTIONS_PER_POOL:
            raise ServiceError(
                gettext("A pool holds at most %(MAX_EXCEPTIONS_PER_POOL)s calendar exceptions.")
                % {"MAX_EXCEPTIONS_PER_POOL": MAX_EXCEPTIONS_PER_POOL},
                code="too_many_exceptions",
            )
        errors = _check_exception(values, existing, pool)
        if errors:
            raise FieldErrors(errors, code="invalid_exception")
        row = ScalingException(pool=pool, tenant_id=pool.tenant_id, **values)
        if kind == ScalingException.Kind.CLOSURE:
            row.last_day = row.last_day or row.first_day
            row.weekday = row.start_time = row.end_time = None
        else:
            row.first_day = row.last_day = None
        row.full_clean()
        row.save()
        events.pool_scaling_changed(actor=actor, pool=pool, change="create", data={"kind": kind})
    _refill_soon()
    return row


# The minimum of an exception whose days or times are being checked for overlaps: never read there.
_UNREAD = scaling.Minimum(0)


def _check_exception(values: dict, existing: list[ScalingException], pool: Pool) -> dict[str, str]:
    kind = values.get("kind")
    minimum = scaling.minimum_errors(
        values.get("minimum", 0), values.get("unit") == MinimumUnit.PERCENT, field="minimum", max_size=pool.max_size
    )
    if kind == ScalingException.Kind.CLOSURE:
        if values.get("first_day") is None:
            return {"first_day": gettext("A closure needs its first day."), **minimum}
        # Overlaps are about the days only: the minimum of the closure being checked is not read.
        closure = scaling.Closure(values["first_day"], values.get("last_day") or values["first_day"], _UNREAD)
        other_closures = [_closure(e) for e in existing if e.kind == ScalingException.Kind.CLOSURE]
        return {**scaling.closure_errors(closure, other_closures), **minimum}
    if kind == ScalingException.Kind.SLOT:
        missing = {
            name: "A weekly slot needs this."
            for name in ("weekday", "start_time", "end_time")
            if values.get(name) is None
        }
        if missing:
            return {**missing, **minimum}
        slot = scaling.Slot(values["weekday"], values["start_time"], values["end_time"], _UNREAD)
        other_slots = [_slot(e) for e in existing if e.kind == ScalingException.Kind.SLOT]
        return {**scaling.slot_errors(slot, other_slots), **minimum}
    return {"kind": gettext("Either closure or slot.")}


def delete_exception(*, exception: ScalingException, actor) -> None:
    if exception.pool.tenant_id != exception.tenant_id:
        raise NotFound(gettext("No such calendar exception."))
    with transaction.atomic():
        events.pool_scaling_changed(actor=actor, pool=exception.pool, change="delete", data={"kind": exception.kind})
        exception.delete()
    _refill_soon()


def _refill_soon() -> None:
    # A changed plan applies at the refill this enqueues (on commit), not at the next beat.
    dispatch.refill_pools()
