"""Warm pools: claim a ready desktop in one transaction and refill in the background."""

from __future__ import annotations

import contextlib
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext

from desktops import dispatch
from desktops.choices import IN_FLIGHT_STATUSES, DesktopKind, DesktopState, OperationKind
from desktops.models import Desktop, DesktopTemplate, Operation, Pool
from desktops.services import autoscale, homes, quotas, ramp_down
from desktops.services.requests import _new_operation, request_action
from desktops.services.templates import launchable
from quetzal.errors import Forbidden, LimitExceeded, NotFound, ServiceError
from tenants import events


def claim(*, tenant, user, template: DesktopTemplate, ip: str | None = None) -> tuple[Desktop, Operation | None] | None:
    """Hand the person a warm desktop of this template, or None when the pool has none ready."""
    with transaction.atomic():
        # The tenant's lock makes the limits and the hand-out one step.
        return claim_locked(locked=quotas.lock(tenant), user=user, template=template, ip=ip)


def claim_locked(
    *, locked, user, template: DesktopTemplate, ip: str | None = None
) -> tuple[Desktop, Operation | None] | None:
    """claim(), for a caller whose transaction already holds the tenant's lock: `locked` is what quotas.lock gave."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("claim_locked() outside transaction.atomic(): no tenant lock can be held")
    tenant = locked
    # No savepoint of its own: a refusal below undoes the caller's whole transaction, as the lock's holder expects.
    pool = Pool.objects.for_tenant(tenant).filter(template=template, enabled=True).first()
    if pool is None:
        return None
    now = timezone.now()
    quotas.ensure_tenant_active(locked)
    # SKIP LOCKED lets concurrent claimers take different rows instead of queueing on one;
    # the conditional UPDATE keeps the claim exact where the database has no row locks (SQLite).
    # Not one with an operation queued: a ramp-down release (or a recycle) already decided its fate.
    busy = Operation.objects.filter(desktop=OuterRef("pk"), status__in=IN_FLIGHT_STATUSES)
    candidates = (
        Desktop.objects.select_for_update(skip_locked=True)
        .filter(pool=pool, user__isnull=True, state=pool.warm_state)
        .exclude(Exists(busy))
        .order_by("created_at", "id")
    )
    for _attempt in range(5):
        desktop = candidates.first()  # LIMIT 1: lock one row, leave the rest to other claimers
        if desktop is None:
            break
        # A warm running desktop already counts against the tenant's running quotas: only the person's
        # limit is new. A hibernated one boots now and needs the room.
        boots = desktop.state == DesktopState.HIBERNATED
        # The tenant is locked above, for the whole transaction: its limits as read there hold.
        refusal = quotas.run_refusal(
            locked,
            user=user,
            vcpus=desktop.vcpus if boots else 0,
            memory_mib=desktop.memory_mib if boots else 0,
            exclude_desktop_id=desktop.pk,
        )
        if refusal is not None:
            raise refusal
        if not Desktop.objects.filter(pk=desktop.pk, user__isnull=True).update(
            user=user, assigned_at=now, last_activity_at=now
        ):
            continue
        desktop.user, desktop.assigned_at = user, now
        if desktop.template_id == template.pk:
            desktop.template = template  # what wants_home() reads, without loading it again
        return desktop, handed_out(locked=tenant, user=user, desktop=desktop, pool=pool, ip=ip, boots=boots)
    return None


def handed_out(*, locked, user, desktop: Desktop, pool: Pool, ip: str | None, boots: bool) -> Operation | None:
    """What follows a claim in its transaction: the audit event, the start or the home, the pool's refill.

    The operation returned is the one the launch waits on (the start of a hibernated desktop), else None.
    """
    events.desktop_claimed(actor=user, tenant=locked, desktop=desktop, pool=pool, ip=ip)
    operation = None
    if boots:
        # The start plugs the home in as it boots.
        operation = _new_operation(desktop=desktop, kind=OperationKind.START, actor=user)
    elif homes.wants_home(desktop):
        # Already running, so the claim stays instant: a worker hot-plugs the person's home meanwhile
        # and the guest mounts it when it appears (by its serial). Not the launch's operation to wait on.
        _new_operation(desktop=desktop, kind=OperationKind.ATTACH_HOME, actor=user)
    dispatch.refill_pools()
    return operation


def shortfall(pool: Pool, *, wanted: int | None = None) -> int:
    """How many desktops the pool lacks: up to its warm target unassigned ones, never beyond `max_size` in all.

    The target is `min_ready`, or what the pool's scaling plan (and prediction) asks for now; `wanted` passes
    one already computed.
    """
    if wanted is None:
        wanted = autoscale.warm_target(pool).warm
    unassigned = Desktop.objects.filter(pool=pool, user__isnull=True).exclude(
        state__in=[DesktopState.DELETED, DesktopState.DELETING, DesktopState.ERROR]
    )
    alive = Desktop.objects.filter(pool=pool).exclude(state__in=[DesktopState.DELETED])
    return max(0, min(wanted - unassigned.count(), pool.max_size - alive.count()))


def held_back(pool: Pool) -> ServiceError | None:
    """Why refill cannot bring the pool up to `min_ready` now (a quota of its tenant, a suspension), or None.

    Read without the lock, for the pool's pages and API; refill itself decides under the lock.
    """
    if not pool.enabled or shortfall(pool) == 0:
        return None
    tenant, template = pool.tenant, pool.template
    if not tenant.is_active:
        return Forbidden(
            gettext("%(name)s is suspended: the pool is not refilled.") % {"name": tenant.name}, code="tenant_suspended"
        )
    return quotas.create_refusal(tenant, disk_gib=template.disk_gib) or quotas.run_refusal(
        tenant, user=None, vcpus=template.vcpus, memory_mib=template.memory_mib
    )


def refill(pool: Pool, *, now: datetime | None = None) -> int:
    """Create pooled desktops up to the pool's shortfall, and only as far as the tenant's quotas allow.

    One desktop per transaction, each under the tenant's lock: concurrent refills (beat, every claim) and the
    tenant's own requests take turns, and each reads the counts the previous one left.

    `now` is the moment the scaling plan is read at (tests and the autoscale bench pass a simulated clock).
    """
    # One target per pass: the plan and the prediction do not change between two desktops of one refill.
    target = autoscale.warm_target(pool, now=now)
    autoscale.release_surplus(pool, target)
    ramp_down.apply(pool, phase=target.phase, now=now)
    made = 0
    while True:
        with transaction.atomic():
            tenant = quotas.lock(pool.tenant)
            current = Pool.objects.filter(pk=pool.pk, enabled=True).select_related("template").first()
            if current is None or not tenant.is_active or shortfall(current, wanted=target.warm) == 0:
                break
            if not launchable(DesktopTemplate.objects.all(), tenant).filter(pk=current.template_id).exists():
                break  # a template its tenant may no longer launch: build nothing more from it
            template = current.template
            try:
                quotas.ensure_can_create(tenant=tenant, disk_gib=template.disk_gib)
                quotas.ensure_can_run(tenant=tenant, user=None, vcpus=template.vcpus, memory_mib=template.memory_mib)
            except LimitExceeded:
                break  # held back by the tenant's quota; held_back() says so on the pool
            desktop = Desktop.objects.create(
                tenant=tenant,
                user=None,
                template=template,
                pool=current,
                kind=DesktopKind.POOLED,
                name=template.name,
                # Pools keep the template's default size: every warm desktop is interchangeable.
                vcpus=template.vcpus,
                memory_mib=template.memory_mib,
                disk_gib=template.disk_gib,
            )
            _new_operation(
                desktop=desktop,
                kind=OperationKind.CREATE,
                actor=None,
                params={"start": True, "hibernate_after": current.warm_state == Pool.WarmState.HIBERNATED},
            )
            made += 1
    return made


def refill_all() -> int:
    """Refill every enabled pool (beat task)."""
    return sum(refill(pool) for pool in Pool.objects.filter(enabled=True).select_related("tenant", "template"))


def _ensure_launchable(tenant, template: DesktopTemplate) -> None:
    """A pool builds desktops from its template for its tenant: only a template that tenant may launch."""
    if not launchable(DesktopTemplate.objects.all(), tenant).filter(pk=template.pk).exists():
        raise ServiceError(gettext("No such template for your organisation."), code="template_unavailable", status=404)


def save_pool(*, tenant, actor, values: dict, pool: Pool | None = None) -> Pool:
    """Create or change a pool; the next refill applies the new sizes."""
    # Callers resolve ids through the tenant scope already; re-checked here so no path can skip it.
    if pool is not None and pool.tenant_id != tenant.pk:
        raise NotFound(gettext("No such pool in your organisation."))
    if "template" in values or pool is None:
        _ensure_launchable(tenant, values["template"])
    with transaction.atomic():
        if pool is None:
            pool = Pool(tenant=tenant, name=values.get("name") or values["template"].name)
        for key, value in values.items():
            setattr(pool, key, value)
        pool.full_clean()
        pool.save()
        events.pool_saved(actor=actor, tenant=tenant, pool=pool)
    dispatch.refill_pools()
    return pool


def delete_pool(*, pool: Pool, actor) -> None:
    """Remove a pool and recycle its unassigned desktops."""
    with transaction.atomic():
        for desktop in Desktop.objects.filter(pool=pool, user__isnull=True).exclude(
            state__in=[DesktopState.DELETED, DesktopState.DELETING]
        ):
            # A busy desktop is left to reconcile and the next pass.
            with contextlib.suppress(ServiceError):
                request_action(
                    desktop=desktop, kind=OperationKind.DELETE, actor=actor, params={"reason": "Pool removed"}
                )
        events.pool_deleted(actor=actor, pool=pool)
        pool.delete()
