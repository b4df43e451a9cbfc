"""Personal desktops warmed before their owner usually arrives, so a personal desktop is as instant as a pooled one.

Opt-in per tenant (`warm_personal_desktops`, lead time `warm_personal_lead_minutes`); the beat runs `warm_all`.
What the owner did is the only input: their own starts of the desktop and their console opens on it (a warmed
desktop is connected to, not started, so the signal outlives the warming), the first of each burst counting as
the arrival (ARRIVAL_GAP). Those arrivals go through the pools' demand profile (prediction.build_profile: the last
four weeks by quarter hour of the week, recent weeks weighing more) and the rule is USUAL_ARRIVALS:

    the owner usually arrives soon when the profile expects at least half an arrival of theirs in the quarter
    hours that begin within the lead time from now.

With a two-week half-life that is: on two or more of the last four same weekdays, last week among them (or on
three of them in any case). One arrival is not a habit, and an owner who stopped coming stops being warmed.

A warmed desktop carries `warm_until` (the end of the arrival quarter hour plus ARRIVAL_GRACE): no second warm-up
before then, and the idle policy leaves it running until then, so warm-up and idle stop do not take turns.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from desktops.choices import DesktopKind, DesktopState, OperationKind
from desktops.models import Desktop, Operation
from desktops.services import prediction, quotas, scaling
from desktops.services.requests import request_action
from quetzal.errors import ServiceError
from tenants.choices import TenantStatus
from tenants.events import AuditAction
from tenants.models import AuditEvent, Tenant

log = logging.getLogger(__name__)

REASON = "Warmed before its owner usually arrives"
# Expected arrivals of the owner in the coming quarter hours at which the desktop is warmed.
USUAL_ARRIVALS = 0.5
# Recent weeks weigh more, but one week alone (0.39 of four) does not make a habit.
HALF_LIFE_WEEKS = 2.0
# A sign of the owner (a start, a console open) counts as an arrival when none came in this time before it.
ARRIVAL_GAP = timedelta(hours=1)
# How long past the usual arrival quarter hour a warmed desktop waits for its owner before it may count as idle.
ARRIVAL_GRACE = timedelta(minutes=15)
SLOT = timedelta(minutes=prediction.SLOT_MINUTES)
# What the owner asking for their desktop looks like in the operations.
ARRIVING_KINDS = (OperationKind.CREATE, OperationKind.START, OperationKind.RESUME)


def _floor(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute - moment.minute % prediction.SLOT_MINUTES, second=0, microsecond=0)


def window(local: datetime, lead_minutes: int) -> tuple[datetime, datetime] | None:
    """The quarter hours that begin within the lead time from `local`: (first start, last start), or None."""
    first = _floor(local)
    if first < local:
        first += SLOT
    last = _floor(local + timedelta(minutes=lead_minutes))
    return (first, last) if first <= last else None


def arrivals(signs: list[datetime]) -> list[datetime]:
    """The owner's arrivals among their signs: each sign with none in the ARRIVAL_GAP before it."""
    ordered = sorted(signs)
    return [moment for i, moment in enumerate(ordered) if i == 0 or moment - ordered[i - 1] >= ARRIVAL_GAP]


def usually_arrives(arrived: list[datetime], *, local: datetime, lead_minutes: int) -> bool:
    """USUAL_ARRIVALS, from the owner's local arrival times on the days before `local`'s.

    Weeks before the desktop existed count as weeks the owner did not come: a new desktop is warmed once its
    owner has made a habit of it, not after their first morning.
    """
    span = window(local, lead_minutes)
    if span is None:
        return False
    first, last = span
    slots = set()
    at = first
    while at <= last:
        slots.add((at.isoweekday(), prediction.slot_of(at)))
        at += SLOT
    # Most desktops' owners never came at this hour of the week: no profile to build for them.
    if not any((came.isoweekday(), prediction.slot_of(came)) in slots for came in arrived):
        return False
    profile = prediction.build_profile(
        arrived,
        today=local.date(),
        half_life_weeks=HALF_LIFE_WEEKS,
        smooth_slots=0,  # a person comes at their time, not spread over the half hour around it
    )
    minutes = (last - first).total_seconds() / 60 + prediction.SLOT_MINUTES
    return profile.expected(first, minutes) >= USUAL_ARRIVALS


def _signs(tenant: Tenant, owners: dict[int, int], *, start: datetime, end: datetime) -> dict[int, list[datetime]]:
    """Each desktop's signs of its owner from `start` to `end`: their own starts of it and console opens on it."""
    signs: dict[int, list[datetime]] = defaultdict(list)
    started = Operation.objects.filter(
        desktop_id__in=owners, kind__in=ARRIVING_KINDS, actor__isnull=False, queued_at__gte=start, queued_at__lt=end
    ).values_list("desktop_id", "actor_id", "queued_at")
    opened = AuditEvent.objects.filter(
        tenant=tenant,
        action=AuditAction.CONSOLE_OPEN,
        target_type=Desktop._meta.label_lower,
        target_id__in=[str(pk) for pk in owners],
        actor__isnull=False,
        created_at__gte=start,
        created_at__lt=end,
    ).values_list("target_id", "actor_id", "created_at")
    rows: list[tuple[int | str, int, datetime]] = [*started, *opened]
    for desktop_id, actor_id, at in rows:
        if owners.get(int(desktop_id)) == actor_id:
            signs[int(desktop_id)].append(at)
    return signs


def candidates(tenant: Tenant, *, now: datetime) -> QuerySet[Desktop]:
    """The tenant's personal desktops a warm-up may start: stopped, owned, not busy, not warmed for this arrival."""
    busy = Operation.objects.in_flight().filter(desktop=OuterRef("pk"))
    return (
        Desktop.objects.for_tenant(tenant)
        .filter(kind=DesktopKind.PERSONAL, state=DesktopState.STOPPED, deleted_at__isnull=True)
        .filter(user__isnull=False, user__is_active=True)
        .exclude(Exists(busy))
        .exclude(warm_until__gt=now)
    )


def warm_tenant(tenant: Tenant, *, now: datetime | None = None) -> int:
    """Start the tenant's stopped personal desktops whose owners usually arrive within the lead time; how many."""
    now = now or timezone.now()
    if not tenant.warm_personal_desktops or not tenant.is_active:
        return 0
    local = scaling.local_moment(now, tenant.time_zone)
    lead = tenant.warm_personal_lead_minutes
    span = window(local, lead)
    if span is None:
        return 0
    rows = list(candidates(tenant, now=now).values_list("pk", "user_id"))
    if not rows:
        return 0
    owners = dict(rows)
    zone = local.tzinfo
    today = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
    start = today - timedelta(days=7 * prediction.HISTORY_WEEKS)
    signs = _signs(tenant, owners, start=start, end=today)
    until = span[1] + SLOT + ARRIVAL_GRACE
    warmed = 0
    for pk, user_id in rows:
        arrived = [moment.astimezone(zone) for moment in arrivals(signs.get(pk, []))]
        if arrived and usually_arrives(arrived, local=local, lead_minutes=lead):
            warmed += warm_one(tenant=tenant, desktop_id=pk, owner_id=user_id, until=until, now=now)
    return warmed


def warm_one(*, tenant: Tenant, desktop_id: int, owner_id: int, until: datetime, now: datetime) -> bool:
    """Queue the warm-up start, if the desktop still may have one under its lock and the tenant's quotas allow it."""
    try:
        with transaction.atomic():
            # The tenant's lock first, as every start takes it: the quotas read and the start are one step.
            quotas.lock(tenant)
            desktop = (
                candidates(tenant, now=now)
                .filter(pk=desktop_id, user_id=owner_id)
                .select_for_update(of=("self",))
                .select_related("tenant")
                .first()
            )
            if desktop is None:
                return False  # started, handed on, deleted or busy meanwhile
            # The same checks as the owner's own start (the tenant's and the owner's running limits).
            request_action(desktop=desktop, kind=OperationKind.START, actor=None, params={"reason": REASON})
            Desktop.objects.filter(pk=desktop.pk).update(warm_until=until)
    except ServiceError as error:
        log.info("warm-up skipped %s: %s", desktop_id, error.detail)
        return False
    return True


def warm_all(now: datetime | None = None) -> int:
    """Warm the personal desktops of every tenant with the policy (beat task); how many starts were queued."""
    tenants = Tenant.objects.filter(warm_personal_desktops=True, status=TenantStatus.ACTIVE)
    return sum(warm_tenant(tenant, now=now) for tenant in tenants)
