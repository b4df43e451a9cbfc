"""Idle shutdown and maximum session length, applied by a beat task."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from desktops.choices import DesktopKind, DesktopState, OperationKind
from desktops.metrics.models import DesktopSample
from desktops.models import Desktop
from desktops.services.requests import recycle, request_action
from quetzal.errors import ServiceError
from tenants import events
from tenants.choices import IdleAction

log = logging.getLogger(__name__)


# How long before an idle stop the portal and the console warn ("Still working? Keep it running").
WARNING_MINUTES = 5


def has_idle_policy(desktop: Desktop) -> bool:
    """Whether the desktop's tenant acts on idle desktops at all."""
    tenant = desktop.tenant
    return bool(tenant.idle_timeout_minutes) and tenant.idle_action != IdleAction.NONE


def idle_deadline(desktop: Desktop) -> datetime | None:
    """When the idle action will hit this running desktop (None: the tenant has no idle policy).

    Idle means no keyboard or pointer input reached the desktop for the tenant's idle time: the console
    proxy reports input as it passes (desktops.console.activity), so a tab left open and untouched is
    idle too. A run counts from its start, never from input seen in an earlier run.
    """
    tenant = desktop.tenant
    if not has_idle_policy(desktop):
        return None
    moments = [m for m in (desktop.last_activity_at, desktop.running_since) if m is not None]
    since = max(moments) if moments else desktop.state_changed_at
    deadline = since + timedelta(minutes=tenant.idle_timeout_minutes)
    # Warmed ahead of its owner's usual arrival, it waits for them (desktops.services.warm_personal): a short
    # idle time would otherwise stop it before they come, and the warm-up would have been for nothing.
    if desktop.warm_until is not None and desktop.warm_until > deadline:
        return desktop.warm_until
    return deadline


def warning_window(desktop: Desktop) -> timedelta:
    """How long before the idle action the person is warned: a few minutes, half the idle time when shorter."""
    return timedelta(minutes=min(WARNING_MINUTES, max(1, desktop.tenant.idle_timeout_minutes // 2)))


def warning_due(desktop: Desktop, *, now: datetime | None = None) -> bool:
    """Whether the idle deadline is close enough to warn the person (it may already have passed)."""
    deadline = idle_deadline(desktop)
    if deadline is None:
        return False
    return deadline - (now or timezone.now()) <= warning_window(desktop)


def keep_running(*, desktop: Desktop, actor, ip: str | None = None, now: datetime | None = None) -> datetime | None:
    """The person says they are still working: count it as input now; returns the new idle deadline."""
    now = now or timezone.now()
    if desktop.state != DesktopState.RUNNING:
        raise ServiceError(gettext("Only a running desktop can be kept running."), code="not_running", status=409)
    with transaction.atomic():
        # Forward only, like input from the console: a late click never moves the deadline back.
        moved = (
            Desktop.objects.filter(pk=desktop.pk)
            .filter(Q(last_activity_at__lt=now) | Q(last_activity_at__isnull=True))
            .update(last_activity_at=now)
        )
        desktop.refresh_from_db(fields=["last_activity_at"])
        deadline = idle_deadline(desktop)
        # Only a click that put the shutdown off is worth a line in the log, not a repeated one.
        if moved:
            events.desktop_kept_running(actor=actor, desktop=desktop, until=deadline, ip=ip)
    return deadline


def session_deadline(desktop: Desktop) -> datetime | None:
    """When the tenant's maximum session length ends this desktop's run."""
    hours = desktop.tenant.max_session_hours
    if not hours or desktop.running_since is None:
        return None
    return desktop.running_since + timedelta(hours=hours)


def _action_for(desktop: Desktop) -> str:
    if desktop.kind == DesktopKind.POOLED:
        return IdleAction.RECYCLE if desktop.pool is None else desktop.pool.idle_action
    action = desktop.tenant.idle_action
    return IdleAction.STOP if action == IdleAction.RECYCLE else action


def idle_action(desktop: Desktop) -> str:
    """What the idle policy will do to this desktop: stop, hibernate, recycle or none."""
    return _action_for(desktop)


def apply(desktop: Desktop, *, reason: str) -> bool:
    """Stop, hibernate or recycle the desktop, recording why; False when something else is in flight."""
    action = _action_for(desktop)
    try:
        if action == IdleAction.RECYCLE:
            recycle(desktop=desktop, reason=reason)
        elif action == IdleAction.HIBERNATE:
            request_action(desktop=desktop, kind=OperationKind.HIBERNATE, actor=None, params={"reason": reason})
        elif action == IdleAction.STOP:
            request_action(desktop=desktop, kind=OperationKind.STOP, actor=None, params={"reason": reason})
        else:
            return False
    except ServiceError as error:
        log.info("idle policy skipped %s: %s", desktop.pk, error.detail)
        return False
    return True


def busy_cpu(desktop: Desktop, *, now: datetime) -> bool:
    """Whether the guest worked above the tenant's CPU threshold during the idle window.

    A build or a render left running with the console closed is not idle. Without samples (metrics
    off, or just started) CPU says nothing and the console rule alone decides.
    """
    threshold = desktop.tenant.idle_cpu_threshold_percent
    if not threshold:
        return False
    window = now - timedelta(minutes=desktop.tenant.idle_timeout_minutes)
    return DesktopSample.objects.filter(desktop=desktop, at__gte=window, cpu_percent__gte=threshold).exists()


def enforce(now: datetime | None = None) -> int:
    """Apply idle and maximum-session policies to running desktops; returns how many were acted on."""
    now = now or timezone.now()
    acted = 0
    # Warm, unassigned pool desktops are idle on purpose.
    running = Desktop.objects.filter(state=DesktopState.RUNNING).exclude(kind=DesktopKind.POOLED, user__isnull=True)
    for desktop in running.select_related("tenant", "pool"):
        session_end = session_deadline(desktop)
        if session_end is not None and session_end <= now:
            hours = desktop.tenant.max_session_hours
            acted += apply(desktop, reason=f"Reached the maximum session length of {hours} h")
            continue
        idle_end = idle_deadline(desktop)
        if idle_end is not None and idle_end <= now and not busy_cpu(desktop, now=now):
            minutes = desktop.tenant.idle_timeout_minutes
            acted += apply(desktop, reason=f"No keyboard or mouse input for {minutes} min")
    return acted
