"""Ramp-down of desktops people hold: stopped (or recycled) by the plan, after notice to whoever is connected.

The plan's `stop_in_use` says whether ramp-down and off-peak stop a pool's desktops that people hold; its
`notice_minutes` how long a person with a console open is warned first ("stopped at 18:30; save your work"),
and `defer_minutes` how far their "Keep working" puts the stop off (at most MAX_DEFERRALS times). A desktop
nobody is connected to is stopped at once. Every stop is decided again under the desktop's row lock: one that
changed hands, or whose person connected since, is not stopped on a stale read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from desktops.choices import DesktopState, OperationKind
from desktops.metrics import groups, live
from desktops.models import Desktop, Pool, ScalingPlan, StopNotice
from desktops.services import scaling
from desktops.services.requests import recycle, request_action
from quetzal.errors import Conflict, ServiceError
from tenants import events
from tenants.choices import IdleAction

log = logging.getLogger(__name__)

# How many times one person may put one evening's stop off.
MAX_DEFERRALS = 3
NOTICE_EVENT = "stop_notice"
REASON = "Ramp-down of the pool's scaling plan"
# A desktop used this recently (just claimed, a console just closed) is not stopped unannounced: its person
# may be on the way to its console, or reconnecting after a blip. The next pass after it decides.
SETTLE = timedelta(minutes=5)


@dataclass(frozen=True)
class Notice:
    """What the person's console shows: when (UTC, and as the tenant's wall clock) and whether they may defer."""

    due_at: datetime
    clock: str
    deferrable: bool


def releasing(phase: str | None) -> bool:
    """Whether the plan's phase now is one in which held desktops are stopped (a closure is off-peak)."""
    return phase in scaling.RELEASING_PHASES


def apply(pool: Pool, *, phase: str | None, now: datetime | None = None) -> int:
    """Stop the pool's held desktops the plan stops now, notice first; returns how many stops were queued."""
    now = now or timezone.now()
    plan = ScalingPlan.objects.filter(pool=pool, enabled=True).first()
    if plan is None or not plan.stop_in_use or not releasing(phase):
        # Ramp-up came, or the plan changed: an announced stop no longer follows from it.
        StopNotice.objects.filter(desktop__pool=pool).delete()
        return 0
    # A desktop its person stopped (or recycled) before the due time keeps no notice.
    StopNotice.objects.filter(desktop__pool=pool).exclude(desktop__state=DesktopState.RUNNING).delete()
    held = Desktop.objects.filter(pool=pool, user__isnull=False, state=DesktopState.RUNNING).select_related(
        "tenant", "pool", "stop_notice"
    )
    stopped = 0
    for desktop in held:
        holder = desktop.user_id
        assert holder is not None, "held desktops are read with their person"
        notice = getattr(desktop, "stop_notice", None)
        if notice is not None:
            stopped += notice.due_at <= now and stop_due(notice.pk, now=now)
        elif desktop.consoles_open and plan.notice_minutes:
            _announce(desktop, holder=holder, plan=plan, now=now)
        elif plan.notice_minutes == 0:
            # With no notice in the plan the stop is the plan's at once, connected or not.
            stopped += stop_now(desktop.pk, user_id=holder, unless_connected=False)
        elif desktop.last_activity_at is None or desktop.last_activity_at <= now - SETTLE:
            stopped += stop_now(desktop.pk, user_id=holder, quiet_since=now - SETTLE)
    return stopped


def _announce(desktop: Desktop, *, holder: int, plan: ScalingPlan, now: datetime) -> None:
    """Tell the connected person when their desktop stops; the stop waits for the notice's due time."""
    due = now + timedelta(minutes=plan.notice_minutes)
    with transaction.atomic():
        notice, made = StopNotice.objects.get_or_create(
            desktop=desktop, defaults={"tenant_id": desktop.tenant_id, "user_id": holder, "due_at": due}
        )
        if made:
            events.desktop_stop_announced(desktop=desktop, user_id=holder, due_at=notice.due_at)
    if made:
        _push(desktop, notice, plan)


def stop_now(
    desktop_id: int, *, user_id: int, unless_connected: bool = True, quiet_since: datetime | None = None
) -> bool:
    """Stop a held desktop read as unconnected, unless its person connected, used it since `quiet_since` or it
    changed hands meanwhile."""
    with transaction.atomic():
        held = Desktop.objects.filter(pk=desktop_id, user_id=user_id, state=DesktopState.RUNNING)
        if unless_connected:
            held = held.filter(consoles_open=0)
        if quiet_since is not None:
            held = held.filter(Q(last_activity_at__isnull=True) | Q(last_activity_at__lte=quiet_since))
        desktop = held.select_for_update(of=("self",)).select_related("tenant", "pool").first()
        if desktop is None:
            return False  # connected since (the next pass gives notice), or no longer theirs
        return _stop(desktop)


def stop_due(notice_id: int, *, now: datetime) -> bool:
    """Stop the desktop of a notice that fell due, if it is still the noticed person's and still due."""
    with transaction.atomic():
        notice = StopNotice.objects.select_for_update().filter(pk=notice_id, due_at__lte=now).first()
        if notice is None:
            return False  # deferred meanwhile
        desktop = (
            Desktop.objects.select_for_update(of=("self",))
            .select_related("tenant", "pool")
            .filter(pk=notice.desktop_id, state=DesktopState.RUNNING)
            .first()
        )
        if desktop is None or desktop.user_id != notice.user_id:
            notice.delete()  # stopped or handed on meanwhile: the notice was for someone else's session
            return False
        # Connected or not: whoever left meanwhile had been told, and the stop comes at the time they were told.
        if not _stop(desktop):
            return False  # busy with another operation: the next pass tries again
        notice.delete()
    return True


def _stop(desktop: Desktop) -> bool:
    """The pool's own way of ending a run (recycle, hibernate, else stop), with the plan as the audited reason."""
    action = desktop.pool.idle_action if desktop.pool is not None else IdleAction.STOP
    try:
        if action == IdleAction.RECYCLE:
            recycle(desktop=desktop, reason=REASON)
        else:
            kind = OperationKind.HIBERNATE if action == IdleAction.HIBERNATE else OperationKind.STOP
            request_action(desktop=desktop, kind=kind, actor=None, params={"reason": REASON})
    except ServiceError as error:
        log.info("ramp-down skipped %s: %s", desktop.pk, error.detail)
        return False
    return True


def announces(desktop: Desktop) -> bool:
    """Whether the desktop's pool plan stops held desktops with notice (its console then listens for one)."""
    plan = _plan_of(desktop)
    return plan is not None and plan.enabled and plan.stop_in_use


def _plan_of(desktop: Desktop) -> ScalingPlan | None:
    pool_id = desktop.pool_id
    return None if pool_id is None else ScalingPlan.objects.filter(pool_id=pool_id).first()


def notice_of(desktop: Desktop) -> Notice | None:
    """The announced ramp-down stop of a desktop, for its console and the API (None: none announced)."""
    notice = StopNotice.objects.filter(desktop_id=desktop.pk).first()
    if notice is None:
        return None
    return _notice(desktop, notice, _plan_of(desktop))


def _notice(desktop: Desktop, notice: StopNotice, plan: ScalingPlan | None) -> Notice:
    deferrable = bool(plan and plan.defer_minutes) and notice.deferrals < MAX_DEFERRALS
    clock = scaling.local_moment(notice.due_at, desktop.tenant.time_zone).strftime("%H:%M")
    return Notice(notice.due_at, clock, deferrable)


def defer(*, desktop: Desktop, actor, ip: str | None = None) -> Notice:
    """The person keeps working: the announced stop moves on by the plan's deferral, if the plan allows it."""
    with transaction.atomic():
        notice = StopNotice.objects.select_for_update().filter(desktop_id=desktop.pk).first()
        if notice is None:
            raise Conflict(gettext("No stop is announced for this desktop."), code="no_stop_notice")
        plan = _plan_of(desktop)
        if plan is None or not plan.defer_minutes:
            raise Conflict(
                gettext("Your organisation's plan does not let this stop be put off."), code="defer_not_allowed"
            )
        if notice.deferrals >= MAX_DEFERRALS:
            raise Conflict(
                gettext("The stop was put off %(count)d times already.") % {"count": MAX_DEFERRALS}, code="defer_limit"
            )
        notice.due_at += timedelta(minutes=plan.defer_minutes)
        notice.deferrals += 1
        notice.save(update_fields=["due_at", "deferrals"])
        events.desktop_kept_running(actor=actor, desktop=desktop, until=notice.due_at, ip=ip)
    _push(desktop, notice, plan)
    return _notice(desktop, notice, plan)


def _push(desktop: Desktop, notice: StopNotice, plan: ScalingPlan | None) -> None:
    """Send the notice to the desktop's live group, which its open console page listens on, after commit."""
    shown = _notice(desktop, notice, plan)
    payload = {
        "type": NOTICE_EVENT,
        "desktop": desktop.pk,
        "at": live.epoch(shown.due_at),
        "clock": shown.clock,
        "deferrable": shown.deferrable,
    }
    message = live.push(groups.desktop_group(desktop.pk), groups.desktop_topic(desktop.pk), payload)
    transaction.on_commit(lambda: live.publish([message]))


def ensure_held_by(desktop: Desktop, user) -> None:
    """Only the person the desktop is assigned to puts its stop off (an admin watching does not)."""
    if desktop.user_id != getattr(user, "pk", None):
        raise ServiceError(gettext("Only the desktop's own person can put its stop off."), code="not_yours", status=403)
