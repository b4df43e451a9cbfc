"""Tenant and per-person limits, each checked in the same transaction as the write it guards.

Every check locks the tenant's row first (`lock`), so of two requests that would each fit alone but not
together, the second one reads what the first one wrote and is refused: check and write are one atomic step
on PostgreSQL (DESIGN rule 8). The `*_refusal` functions are the same checks without the lock, for showing
why something is held back (the pool pages); nothing may write on the strength of them.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils.translation import gettext

from desktops.choices import ACTIVE_STATES, IN_FLIGHT_STATUSES, OperationKind
from desktops.models import Desktop, Operation
from desktops.models.desktop import DesktopQuerySet
from quetzal.errors import Forbidden, LimitExceeded
from tenants.models import Tenant, User

# In-flight operations that bring a desktop up: it holds its vCPUs and RAM from the moment one is queued,
# not from when a worker gets round to booting it (else every request queued meanwhile would pass the check).
_BOOTING = (
    Q(kind__in=(OperationKind.START, OperationKind.RESTORE, OperationKind.RESUME))
    | Q(kind=OperationKind.CREATE, params__start=True)
    | Q(kind=OperationKind.REVERT, params__boots=True)
)


def lock(tenant: Tenant) -> Tenant:
    """Hold the tenant's row until the current transaction ends; return it as it is now (quotas fresh).

    FOR NO KEY UPDATE queues every quota-guarded write of one tenant behind the others, yet leaves inserts
    that merely reference the tenant (operations, audit events) free to go on meanwhile.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quotas.lock() outside transaction.atomic(): the lock would end before the write it guards")
    return Tenant.objects.select_for_update(no_key=True).get(pk=tenant.pk)


def counted_desktops(tenant: Tenant) -> DesktopQuerySet:
    """What the desktop-count quota counts: every desktop not yet deleted, personal or pooled."""
    return Desktop.objects.for_tenant(tenant).alive()


def running_desktops(tenant: Tenant) -> DesktopQuerySet:
    """What the running quotas count: desktops that may be using a host's CPU, or are queued to."""
    booting = Operation.objects.filter(desktop=OuterRef("pk"), status__in=IN_FLIGHT_STATUSES).filter(_BOOTING)
    return Desktop.objects.for_tenant(tenant).filter(Q(state__in=ACTIVE_STATES) | Exists(booting))


def ensure_tenant_active(tenant: Tenant) -> None:
    """A suspended tenant cannot start anything."""
    if not tenant.is_active:
        raise Forbidden(
            gettext("%(name)s is suspended: desktops cannot be started until it is reactivated.")
            % {"name": tenant.name},
            code="tenant_suspended",
        )


def create_refusal(tenant: Tenant, *, disk_gib: int = 0) -> LimitExceeded | None:
    """Why one more desktop (with a disk of `disk_gib`) would break the desktop-count or disk quota, or None."""
    if tenant.quota_desktops and counted_desktops(tenant).count() >= tenant.quota_desktops:
        return LimitExceeded(
            gettext("Your organisation's limit of %(quota_desktops)s desktops is reached.")
            % {"quota_desktops": tenant.quota_desktops},
            code="quota_desktops",
        )
    return disk_refusal(tenant, more_gib=disk_gib)


def disk_refusal(tenant: Tenant, *, more_gib: int) -> LimitExceeded | None:
    """Why `more_gib` more GiB of desktop disk would break the tenant's disk quota, or None."""
    if not tenant.quota_disk_gib or more_gib <= 0:
        return None
    held = counted_desktops(tenant).aggregate(gib=Sum("disk_gib"))["gib"] or 0
    if held + more_gib > tenant.quota_disk_gib:
        return LimitExceeded(
            gettext(
                "Your organisation's limit of %(quota_disk_gib)s GiB of desktop disks would be exceeded "
                "(%(held)s GiB held, %(more_gib)s GiB more asked)."
            )
            % {"quota_disk_gib": tenant.quota_disk_gib, "held": held, "more_gib": more_gib},
            code="quota_disk",
        )
    return None


def run_refusal(
    tenant: Tenant, *, user: User | None, vcpus: int, memory_mib: int, exclude_desktop_id: int | None = None
) -> LimitExceeded | None:
    """Why running one more desktop (of `vcpus` and `memory_mib`; 0 when it runs already) breaks a limit, or None.

    `user` is whose running limit applies (None for a pool's unassigned desktops); `exclude_desktop_id` is
    the desktop about to start, so that it is not counted against itself.
    """
    running = running_desktops(tenant)
    if exclude_desktop_id is not None:
        running = running.exclude(pk=exclude_desktop_id)
    limit = tenant.max_running_per_user if user is not None else 0
    if limit and running.filter(user=user).count() >= limit:
        return LimitExceeded(
            gettext("You may run %(limit)s desktop(s) at once; stop one first.") % {"limit": limit},
            code="limit_running_per_user",
        )
    checks_vcpus = bool(tenant.quota_vcpus and vcpus)
    checks_memory = bool(tenant.quota_ram_mib and memory_mib)
    if checks_vcpus or checks_memory:
        used = running.aggregate(vcpus=Sum("vcpus"), memory=Sum("memory_mib"))
        if checks_vcpus and (used["vcpus"] or 0) + vcpus > tenant.quota_vcpus:
            return LimitExceeded(
                gettext("Your organisation's limit of %(quota_vcpus)s running vCPUs would be exceeded.")
                % {"quota_vcpus": tenant.quota_vcpus},
                code="quota_vcpus",
            )
        if checks_memory and (used["memory"] or 0) + memory_mib > tenant.quota_ram_mib:
            return LimitExceeded(
                gettext("Your organisation's limit of %(quota_ram_mib)s MiB of running RAM would be exceeded.")
                % {"quota_ram_mib": tenant.quota_ram_mib},
                code="quota_ram",
            )
    return None


def ensure_can_create(*, tenant: Tenant, disk_gib: int = 0) -> None:
    """Refuse one more desktop over the tenant's desktop-count or disk quota; locks the tenant for the transaction."""
    refusal = create_refusal(lock(tenant), disk_gib=disk_gib)
    if refusal is not None:
        raise refusal


def ensure_can_run(
    *, tenant: Tenant, user: User | None, vcpus: int, memory_mib: int, exclude_desktop_id: int | None = None
) -> None:
    """Refuse a start over the running quotas or the person's running limit; locks the tenant for the transaction."""
    refusal = run_refusal(
        lock(tenant), user=user, vcpus=vcpus, memory_mib=memory_mib, exclude_desktop_id=exclude_desktop_id
    )
    if refusal is not None:
        raise refusal


def ensure_can_grow_disk(*, tenant: Tenant, more_gib: int) -> None:
    """Refuse a disk grow over the tenant's disk quota; locks the tenant for the transaction."""
    refusal = disk_refusal(lock(tenant), more_gib=more_gib)
    if refusal is not None:
        raise refusal


def ensure_size_fits_quotas(*, tenant: Tenant, vcpus: int, memory_mib: int) -> None:
    """Refuse a size the tenant could never run, whatever else stops: larger than its running quotas."""
    if tenant.quota_vcpus and vcpus > tenant.quota_vcpus:
        raise LimitExceeded(
            gettext("%(vcpus)s vCPUs is more than your organisation's running quota of %(quota_vcpus)s.")
            % {"vcpus": vcpus, "quota_vcpus": tenant.quota_vcpus},
            code="quota_vcpus",
        )
    if tenant.quota_ram_mib and memory_mib > tenant.quota_ram_mib:
        raise LimitExceeded(
            gettext("%(memory_mib)s MiB is more than your organisation's running RAM quota of %(quota_ram_mib)s MiB.")
            % {"memory_mib": memory_mib, "quota_ram_mib": tenant.quota_ram_mib},
            code="quota_ram",
        )
