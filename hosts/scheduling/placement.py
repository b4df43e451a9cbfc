"""Placement: Nova-style filters and weighers over hosts, then a race-safe claim of capacity."""

# Filters and weighers are SQL fragments (hosts.scheduling), so ranking 500 hosts is one query and
# the claim re-checks the same rules in its conditional UPDATE. On PostgreSQL the best host is
# locked with FOR UPDATE SKIP LOCKED, so concurrent placements take different hosts instead of
# queueing on the same row. Call place() outside long transactions: its locks last until commit.

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    F,
    PositiveBigIntegerField,
    PositiveIntegerField,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext

from hosts import conf
from hosts.choices import GpuProfileKind, SchedulerStrategy
from hosts.errors import NoCapacity
from hosts.models import Allocation, Host, HostDevice
from hosts.scheduling.filters import CLAIM_FILTERS, FILTERS, condition, ram_room_sql, swap_guard_sql, where
from hosts.scheduling.request import Placement, PlacementRequest, parse_gpu_profile
from hosts.scheduling.sql import VCPU_CAPACITY, fetch, timestamp
from hosts.scheduling.sql import host as host_column
from hosts.scheduling.weighers import weight_sql

log = logging.getLogger(__name__)

# Ranking and claiming again after every candidate was taken by concurrent placements.
MAX_ATTEMPTS = 3


def _rank_sql(
    request: PlacementRequest, now: datetime, limit: int | None, strategy: SchedulerStrategy | None, lock: bool
) -> tuple[str, list]:
    conditions, params = where(request, now)
    weight, weight_params = weight_sql(strategy, request.prefer_host_id)
    sql = f'SELECT "hosts_host"."id" FROM "hosts_host" WHERE {conditions} ORDER BY {weight} DESC, "hosts_host"."id"'
    params = [*params, *weight_params]
    if limit:
        sql += " LIMIT %s"
        params.append(limit)
    if lock:
        # Hosts another placement is claiming are skipped, not waited for.
        sql += " FOR UPDATE SKIP LOCKED"
    return sql, params


def rank(
    request: PlacementRequest,
    *,
    now: datetime | None = None,
    limit: int | None = None,
    strategy: SchedulerStrategy | None = None,
) -> list[int]:
    """Ids of the hosts that pass every filter, best weighed first (ties: lowest id)."""
    sql, params = _rank_sql(request, now or timezone.now(), limit, strategy, lock=False)
    return [row[0] for row in fetch(sql, params)]


# --------------------------------------------------------------------------------------- claim


class _Lost(Exception):
    """Another placement took what this one counted on; roll back and try the next host."""


def _existing(desktop_id: int) -> Placement | None:
    row = Allocation.objects.filter(desktop_id=desktop_id).values_list("host_id", "gpu_device_id").first()
    return Placement(host_id=row[0], gpu_device_id=row[1]) if row else None


def _claim_device(request: PlacementRequest, host_id: int) -> int:
    """Take a GPU (or one vGPU instance) on the host with a conditional UPDATE; raise _Lost if none."""
    gpu = request.gpu
    if gpu.kind == GpuProfileKind.PASSTHROUGH:
        candidates = HostDevice.objects.filter(host_id=host_id, present=True, assigned_desktop_id__isnull=True)
        for device_id in candidates.filter(mdev_instances_used=0).order_by("pk").values_list("pk", flat=True):
            won = HostDevice.objects.filter(
                pk=device_id, present=True, assigned_desktop_id__isnull=True, mdev_instances_used=0
            ).update(assigned_desktop_id=request.desktop_id)
            if won:
                return device_id
        raise _Lost
    devices = HostDevice.objects.filter(
        host_id=host_id, present=True, assigned_desktop_id__isnull=True, mdev_types__has_key=gpu.mdev_type
    )
    # Best fit: fill a GPU already serving this type before opening an idle one.
    ordered = devices.order_by(F("mdev_instances_used").desc(), "pk").values_list("pk", "mdev_types")
    for device_id, types in ordered:
        most = int(types.get(gpu.mdev_type, {}).get("max_instances", 0))
        if most < 1:
            continue
        room = Q(mdev_instances_used=0) | Q(mdev_type_in_use=gpu.mdev_type, mdev_instances_used__lt=F("mdev_capacity"))
        won = (
            HostDevice.objects.filter(pk=device_id, present=True, assigned_desktop_id__isnull=True)
            .filter(room)
            .update(
                mdev_type_in_use=gpu.mdev_type,
                # The first instance fixes the GPU's type and its capacity for that type.
                mdev_capacity=Case(
                    When(mdev_instances_used=0, then=Value(most)),
                    default=F("mdev_capacity"),
                    output_field=PositiveIntegerField(),
                ),
                mdev_instances_used=F("mdev_instances_used") + 1,
            )
        )
        if won:
            return device_id
    raise _Lost


def _take(request: PlacementRequest, host_id: int, now: datetime) -> Placement:
    """Inside a transaction: count the desktop on the host if it still fits, or raise _Lost."""
    # The WHERE re-checks the rules against the row as it is now: on PostgreSQL a concurrent claim
    # holds the row lock and the condition is re-evaluated on its committed result.
    won = (
        Host.objects.filter(pk=host_id)
        .filter(condition(request, now, CLAIM_FILTERS))
        .update(
            allocated_vcpus=F("allocated_vcpus") + request.vcpus,
            allocated_memory_mib=F("allocated_memory_mib") + request.memory_mib,
        )
    )
    if not won:
        raise _Lost
    device_id = None if request.gpu.kind == GpuProfileKind.NONE else _claim_device(request, host_id)
    Allocation.objects.create(
        desktop_id=request.desktop_id,
        host_id=host_id,
        vcpus=request.vcpus,
        memory_mib=request.memory_mib,
        gpu_profile=request.gpu_profile or GpuProfileKind.NONE,
        gpu_device_id=device_id,
    )
    return Placement(host_id=host_id, gpu_device_id=device_id)


def _claim(request: PlacementRequest, host_id: int, now: datetime) -> Placement | None:
    """Claim room on one given host in its own transaction; None if it no longer fits."""
    try:
        with transaction.atomic():
            return _take(request, host_id, now)
    except _Lost:
        return None


def _claim_best(request: PlacementRequest, now: datetime) -> Placement | None:
    """Lock the best host no one else is claiming and claim it, in one transaction; None if none."""
    sql, params = _rank_sql(request, now, 1, None, lock=True)
    try:
        with transaction.atomic():
            rows = fetch(sql, params)
            return _take(request, rows[0][0], now) if rows else None
    except _Lost:
        return None


def _claim_in_one_statement(request: PlacementRequest, now: datetime) -> Placement | None:
    """Rank, lock, count and record in one statement (one round trip); None if no host was free to lock.

    PostgreSQL only, desktops without a GPU. The ranked row is locked with SKIP LOCKED and its
    filters re-checked on the latest version, so the claim is as exact as the step-by-step path.
    A second placement of the same desktop breaks the unique allocation and undoes the whole
    statement (IntegrityError, handled by place()).
    """
    conditions, params = where(request, now)
    weight, weight_params = weight_sql(None, request.prefer_host_id)
    recheck, recheck_params = where(request, now, CLAIM_FILTERS)
    sql = f"""
        WITH pick AS (
            SELECT "hosts_host"."id" FROM "hosts_host" WHERE {conditions}
            ORDER BY {weight} DESC, "hosts_host"."id" LIMIT 1 FOR UPDATE SKIP LOCKED
        ), counted AS (
            UPDATE "hosts_host" SET "allocated_vcpus" = "hosts_host"."allocated_vcpus" + %s,
                "allocated_memory_mib" = "hosts_host"."allocated_memory_mib" + %s
            FROM pick WHERE "hosts_host"."id" = pick."id" AND {recheck}
            RETURNING "hosts_host"."id"
        )
        INSERT INTO "hosts_allocation" ("desktop_id", "host_id", "vcpus", "memory_mib", "gpu_profile", "created_at")
        SELECT %s, counted."id", %s, %s, %s, %s FROM counted
        RETURNING "host_id"
    """
    args = [
        *params,
        *weight_params,
        request.vcpus,
        request.memory_mib,
        *recheck_params,
        request.desktop_id,
        request.vcpus,
        request.memory_mib,
        GpuProfileKind.NONE.value,
        timestamp(now),
    ]
    if connection.in_atomic_block:
        # Inside a caller's transaction a duplicate must undo only this statement: a savepoint.
        with transaction.atomic():
            rows = fetch(sql, args)
    else:
        rows = fetch(sql, args)  # autocommit: the statement is its own transaction, one round trip
    return Placement(host_id=rows[0][0], gpu_device_id=None) if rows else None


def _diagnose(request: PlacementRequest, now: datetime) -> NoCapacity:
    """Apply the filters one by one and name the first that leaves no host."""
    hosts = Host.objects.all()
    if not hosts.exists():
        return NoCapacity(gettext("no host is registered"), reason="no_host")
    for host_filter in FILTERS:
        if not host_filter.applies(request):
            continue
        narrowed = hosts.filter(host_filter.condition(request, now))
        if not narrowed.exists():
            return NoCapacity(host_filter.message(request, hosts), reason=host_filter.reason)
        hosts = narrowed
    # Every filter passes now: concurrent placements took the room and then released it.
    return NoCapacity(gettext("hosts were full while placing; try again"), reason="full")


def place(request: PlacementRequest) -> Placement:
    """Place a desktop, or raise NoCapacity naming why; a desktop already placed keeps its host."""
    skip_locked = connection.features.has_select_for_update_skip_locked
    one_statement = (
        connection.vendor == "postgresql"
        and request.gpu.kind == GpuProfileKind.NONE
        and conf.scheduler_claim() == "statement"
    )
    now = timezone.now()
    try:
        for _attempt in range(MAX_ATTEMPTS):
            now = timezone.now()
            if one_statement and (placement := _claim_in_one_statement(request, now)) is not None:
                return placement
            if skip_locked and not one_statement and (placement := _claim_best(request, now)) is not None:
                return placement
            # Without SKIP LOCKED (SQLite), or when every fitting host is being claimed right now:
            # try the best few in order, waiting for their locks.
            candidates = rank(request, now=now, limit=conf.scheduler_candidates())
            if not candidates:
                break
            for host_id in candidates:
                if (placement := _claim(request, host_id, now)) is not None:
                    return placement
    except IntegrityError:
        # The desktop is placed already (a retried task, or a concurrent call): the unique
        # desktop_id refused our allocation row and the transaction undid our counters.
        existing = _existing(request.desktop_id)
        if existing is None:
            raise
        return existing
    # Checked only now, off the hot path: a placed desktop keeps its host even when hosts are full.
    existing = _existing(request.desktop_id)
    if existing is not None:
        return existing
    raise _diagnose(request, now)


def release(desktop_id: int) -> None:
    """Give back what a desktop held; releasing twice, or a desktop never placed, does nothing."""
    try:
        with transaction.atomic():
            allocation = _locked_allocation(desktop_id)
            if allocation is None:
                return
            Host.objects.filter(pk=allocation.host_id).update(
                allocated_vcpus=Greatest(F("allocated_vcpus") - allocation.vcpus, Value(0)),
                allocated_memory_mib=Greatest(F("allocated_memory_mib") - allocation.memory_mib, Value(0)),
                **unmeasure(allocation),
            )
            if allocation.gpu_device_id is not None:
                _release_device(allocation)
            deleted, _ = Allocation.objects.filter(pk=allocation.pk).delete()
            if not deleted:
                raise _Lost  # a concurrent release got there first; undo our decrement
    except _Lost:
        return


def _locked_allocation(desktop_id: int) -> Allocation | None:
    """Inside a transaction: the desktop's allocation, read after locking its host's row (None if it has none).

    Host row first, as in claims and heartbeats, so they never wait on each other in opposite order; and what
    the allocation says (its measured memory) is then what the host's counters hold for it.
    """
    host_id = Allocation.objects.filter(desktop_id=desktop_id).values_list("host_id", flat=True).first()
    if host_id is None:
        return None
    lock_host(host_id)
    return Allocation.objects.filter(desktop_id=desktop_id, host_id=host_id).first()


def lock_host(host_id: int) -> None:
    """Inside a transaction: hold the host's row, as claims, releases, moves and heartbeats take it first."""
    list(Host.objects.select_for_update().filter(pk=host_id).values_list("pk", flat=True))


def unmeasure(allocation: Allocation) -> dict:
    """Host counter updates that take a measured desktop out of the measured totals (none if unmeasured)."""
    if allocation.measured_memory_mib is None:
        return {}
    return {
        "used_memory_mib": Greatest(F("used_memory_mib") - allocation.measured_memory_mib, Value(0)),
        "measured_allocation_mib": Greatest(F("measured_allocation_mib") - allocation.memory_mib, Value(0)),
    }


def _release_device(allocation: Allocation) -> None:
    if allocation.gpu_device_id is None:
        return
    gpu = parse_gpu_profile(allocation.gpu_profile)
    devices = HostDevice.objects.filter(pk=allocation.gpu_device_id)
    if gpu.kind == GpuProfileKind.PASSTHROUGH:
        devices.filter(assigned_desktop_id=allocation.desktop_id).update(assigned_desktop_id=None)
        return
    devices.filter(mdev_instances_used__gt=0).update(
        mdev_type_in_use=Case(
            When(mdev_instances_used=1, then=Value("")), default=F("mdev_type_in_use"), output_field=CharField()
        ),
        mdev_instances_used=F("mdev_instances_used") - 1,
    )


def resize(desktop_id: int, *, vcpus: int, memory_mib: int) -> bool:
    """Change what a placed desktop holds on its host; False when growing would not fit there.

    The host row's conditional UPDATE is the guard, as in a claim: of two resizes (or a resize and a
    placement) racing for the last room, one wins. A desktop never placed has nothing to change: True.
    """
    if vcpus < 1 or memory_mib < 1:
        raise ValueError("a desktop holds at least 1 vCPU and 1 MiB")
    with transaction.atomic():
        allocation = _locked_allocation(desktop_id)
        if allocation is None:
            return True
        more_vcpus, more_memory = vcpus - allocation.vcpus, memory_mib - allocation.memory_mib
        # A measured desktop counts at its whole new allocation until the next heartbeat measures it again.
        measured = allocation.measured_memory_mib
        more_load = more_memory + (allocation.memory_mib - measured if measured is not None else 0)
        more_unmeasured = more_memory + (allocation.memory_mib if measured is not None else 0)
        fits = RawSQL(
            f"({host_column('allocated_vcpus')} + %s) <= {VCPU_CAPACITY} OR %s <= 0",
            [more_vcpus, more_vcpus],
            output_field=BooleanField(),
        )
        fits_memory = RawSQL(
            f"(({ram_room_sql('%s', '%s')}) AND ({swap_guard_sql('%s')})) OR %s <= 0",
            [more_memory, more_load, more_unmeasured, more_memory],
            output_field=BooleanField(),
        )
        won = (
            Host.objects.filter(pk=allocation.host_id)
            .filter(Q(fits) & Q(fits_memory))
            .update(
                allocated_vcpus=Greatest(F("allocated_vcpus") + more_vcpus, Value(0)),
                allocated_memory_mib=Greatest(F("allocated_memory_mib") + more_memory, Value(0)),
                **unmeasure(allocation),
            )
        )
        if not won:
            return False
        Allocation.objects.filter(pk=allocation.pk).update(vcpus=vcpus, memory_mib=memory_mib, measured_memory_mib=None)
    return True


# ------------------------------------------------------------------------------- counts, repair


def fits_count(
    *,
    vcpus: int,
    memory_mib: int,
    gpu_profile: str = "none",
    image_id: int | None = None,
    virt_type: str | None = None,
) -> int:
    """How many more desktops of this size could be placed right now (for dashboards)."""
    request = PlacementRequest(
        desktop_id=0,
        vcpus=vcpus,
        memory_mib=memory_mib,
        image_id=image_id,
        gpu_profile=gpu_profile,
        virt_type=virt_type,
    )
    hosts = list(Host.objects.filter(condition(request, timezone.now())))
    gpu = request.gpu
    devices: dict[int, list[HostDevice]] = {}
    if gpu.kind != GpuProfileKind.NONE:
        for device in HostDevice.objects.filter(host__in=hosts, present=True):
            devices.setdefault(device.host_id, []).append(device)
    total = 0
    for host in hosts:
        count = min(host.free_vcpus // vcpus, host.placeable_memory_mib // memory_mib)
        if gpu.kind == GpuProfileKind.PASSTHROUGH:
            count = min(count, sum(1 for d in devices.get(host.pk, []) if d.is_free))
        elif gpu.kind == GpuProfileKind.MDEV:
            count = min(count, sum(d.mdev_available(gpu.mdev_type) for d in devices.get(host.pk, [])))
        total += count
    return total


def resync_counters(host_id: int) -> bool:
    """Recompute the host's and its GPUs' counters from allocation rows; True if they had drifted."""
    with transaction.atomic():
        # The lock makes claims wait, and statements after it see every claim committed before.
        host = Host.objects.select_for_update().filter(pk=host_id).first()
        if host is None:
            return False
        sums = Allocation.objects.filter(host_id=host_id).aggregate(
            vcpus=Coalesce(Sum("vcpus"), 0), memory=Coalesce(Sum("memory_mib"), 0)
        )
        drifted = (host.allocated_vcpus, host.allocated_memory_mib) != (sums["vcpus"], sums["memory"])
        if drifted:
            log.warning(
                "host %s counters drifted: %s vCPUs/%s MiB recorded, %s/%s allocated",
                host.name,
                host.allocated_vcpus,
                host.allocated_memory_mib,
                sums["vcpus"],
                sums["memory"],
            )
            Host.objects.filter(pk=host_id).update(allocated_vcpus=sums["vcpus"], allocated_memory_mib=sums["memory"])
        _store_measured_totals(host_id)
        for device in HostDevice.objects.select_for_update().filter(host_id=host_id):
            drifted |= _resync_device(device)
    return drifted


# The largest memory figure a host may report (1 PiB): more is a broken host, and stored sums must stay bounded.
MAX_MEASURED_MIB = 1024**3


def bounded_mib(mib: int | None) -> int | None:
    """A reported memory figure within 0..MAX_MEASURED_MIB (None stays None: nothing was reported)."""
    return None if mib is None else max(0, min(int(mib), MAX_MEASURED_MIB))


def record_guest_memory(host_id: int, used_mib: Mapping[int, int]) -> None:
    """Keep what each running desktop on the host measured (desktop id -> MiB); the others are unmeasured.

    Placement under overcommit counts measured desktops at these figures and the rest at their allocation.
    The host row is locked first, as claims and releases do, and its measured totals are summed from the
    allocation rows under that lock, so a concurrent claim or release is counted once.
    """
    measured = {int(d): bounded_mib(mib) or 0 for d, mib in used_mib.items()}
    with transaction.atomic():
        if not Host.objects.select_for_update().filter(pk=host_id).exists():
            return
        allocations = Allocation.objects.filter(host_id=host_id)
        allocations.exclude(desktop_id__in=list(measured)).exclude(measured_memory_mib=None).update(
            measured_memory_mib=None
        )
        if measured:
            allocations.filter(desktop_id__in=list(measured)).update(
                measured_memory_mib=Case(
                    *[When(desktop_id=d, then=Value(mib)) for d, mib in measured.items()],
                    output_field=PositiveBigIntegerField(),
                )
            )
        _store_measured_totals(host_id)


def _store_measured_totals(host_id: int) -> None:
    """Inside a transaction holding the host row: its measured totals from its allocation rows."""
    sums = Allocation.objects.filter(host_id=host_id, measured_memory_mib__isnull=False).aggregate(
        used=Coalesce(Sum("measured_memory_mib"), 0), allocation=Coalesce(Sum("memory_mib"), 0)
    )
    Host.objects.filter(pk=host_id).update(used_memory_mib=sums["used"], measured_allocation_mib=sums["allocation"])


def _resync_device(device: HostDevice) -> bool:
    held = list(device.allocations.values_list("desktop_id", "gpu_profile"))
    whole = [desktop_id for desktop_id, profile in held if profile == GpuProfileKind.PASSTHROUGH]
    shared = [profile[5:] for _, profile in held if profile.startswith("mdev:")]
    expected = {
        "assigned_desktop_id": whole[0] if whole else None,
        "mdev_instances_used": len(shared),
        "mdev_type_in_use": shared[0] if shared else "",
    }
    actual = {key: getattr(device, key) for key in expected}
    if actual == expected:
        return False
    log.warning("GPU %s counters drifted: %s recorded, %s allocated", device, actual, expected)
    if shared and not device.mdev_capacity:
        expected["mdev_capacity"] = int(device.mdev_types.get(shared[0], {}).get("max_instances", len(shared)))
    HostDevice.objects.filter(pk=device.pk).update(**expected)
    return True
