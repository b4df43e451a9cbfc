"""Placement: Nova-style filters and weighers over hosts, then a race-safe claim of capacity."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from django.db import IntegrityError, transaction
from django.db.models import (
    Case,
    CharField,
    Exists,
    F,
    OuterRef,
    PositiveIntegerField,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, NullIf
from django.db.models.lookups import LessThanOrEqual
from django.db.models.query import QuerySet
from django.utils import timezone

from hosts import conf
from hosts.choices import CopyState, GpuProfileKind, HostState, SchedulerStrategy
from hosts.errors import NoCapacity
from hosts.models import Allocation, Host, HostDevice, Image, ImageCopy
from hosts.models.host import memory_capacity_expression, vcpu_capacity_expression
from quetzal.errors import ServiceError

__all__ = [
    "FILTERS",
    "GpuNeed",
    "NoCapacity",
    "Placement",
    "PlacementRequest",
    "fits_count",
    "parse_gpu_profile",
    "place",
    "rank",
    "release",
    "resync_counters",
    "weighers",
]

log = logging.getLogger(__name__)

# Ranking and claiming again after every candidate was taken by concurrent placements.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class PlacementRequest:
    """What a desktop needs from a host."""

    desktop_id: int
    vcpus: int
    memory_mib: int
    image_id: int | None = None
    gpu_profile: str = "none"  # none | passthrough | mdev:<type>
    virt_type: str | None = None
    exclude_host_ids: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.vcpus < 1 or self.memory_mib < 1:
            raise ServiceError("A desktop needs at least 1 vCPU and 1 MiB of RAM.", code="invalid_request")
        parse_gpu_profile(self.gpu_profile)

    @property
    def gpu(self) -> GpuNeed:
        return parse_gpu_profile(self.gpu_profile)


@dataclass(frozen=True)
class Placement:
    """Where a desktop went: its host and, for GPU desktops, the device it holds."""

    host_id: int
    gpu_device_id: int | None


@dataclass(frozen=True)
class GpuNeed:
    """A parsed GPU profile."""

    kind: GpuProfileKind
    mdev_type: str = ""

    @property
    def label(self) -> str:
        return f"a GPU of type {self.mdev_type}" if self.kind == GpuProfileKind.MDEV else "a GPU for passthrough"


def parse_gpu_profile(profile: str) -> GpuNeed:
    """none, passthrough or mdev:<type>; anything else is refused."""
    if profile in ("", GpuProfileKind.NONE):
        return GpuNeed(GpuProfileKind.NONE)
    if profile == GpuProfileKind.PASSTHROUGH:
        return GpuNeed(GpuProfileKind.PASSTHROUGH)
    if profile.startswith("mdev:") and profile[5:]:
        return GpuNeed(GpuProfileKind.MDEV, profile[5:])
    raise ServiceError(
        f"Unknown GPU profile {profile!r}: use none, passthrough or mdev:<type>.", code="invalid_request"
    )


def _size(mib: int | float) -> str:
    """RAM in the unit an operator would write."""
    mib = int(mib)
    return f"{mib // 1024} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"


def _vcpus(count: int) -> str:
    return f"{count} vCPU" if count == 1 else f"{count} vCPUs"


# ------------------------------------------------------------------------------------- filters


class HostFilter:
    """One placement rule: a SQL condition on hosts, and what to say when it leaves none."""

    name: ClassVar[str] = ""
    reason: ClassVar[str] = "no_host"

    def applies(self, request: PlacementRequest) -> bool:
        return True

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        raise NotImplementedError

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        """Why no host passed, given the hosts that passed every earlier filter."""
        raise NotImplementedError


class ExcludeFilter(HostFilter):
    name = "exclude"
    reason = "excluded"

    def applies(self, request: PlacementRequest) -> bool:
        return bool(request.exclude_host_ids)

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return ~Q(pk__in=request.exclude_host_ids)

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return "no host is left once the excluded hosts are set aside"


class EnabledFilter(HostFilter):
    name = "enabled"

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return Q(enabled=True)

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return "no host is enabled"


class AvailabilityFilter(HostFilter):
    name = "availability"

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return Q(maintenance=False, drain=False)

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return "every enabled host is in maintenance or draining"


class HealthFilter(HostFilter):
    name = "health"
    reason = "hosts_down"

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return Q(state=HostState.UP, last_heartbeat_at__gte=now - timedelta(seconds=conf.host_down_after_s()))

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no enabled host is up (none answered in the last {conf.host_down_after_s():g} s)"


class VirtTypeFilter(HostFilter):
    name = "virt_type"
    reason = "virt_type"

    def applies(self, request: PlacementRequest) -> bool:
        return bool(request.virt_type)

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return Q(virt_type=request.virt_type) | Q(virt_type="", detected_virt_type=request.virt_type)

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no usable host runs {request.virt_type} guests"


class ImageFilter(HostFilter):
    """Only hosts holding a ready copy: cloning must not wait for a multi-GB transfer."""

    name = "image"
    reason = "no_image"

    def applies(self, request: PlacementRequest) -> bool:
        return request.image_id is not None

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        ready = ImageCopy.objects.filter(host=OuterRef("pk"), image_id=request.image_id, state=CopyState.READY)
        return Q(Exists(ready))

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        name = Image.objects.filter(pk=request.image_id).values_list("name", flat=True).first()
        if name is None:
            return f"image {request.image_id} does not exist"
        return f"image {name!r} is not ready on any usable host; copy it to the hosts first"


def _devices(request: PlacementRequest, *, free: bool) -> Q:
    """Hosts with a present device matching the GPU need (and with room on it, when free)."""
    gpu = request.gpu
    devices = HostDevice.objects.filter(host=OuterRef("pk"), present=True)
    if gpu.kind == GpuProfileKind.MDEV:
        devices = devices.filter(mdev_types__has_key=gpu.mdev_type)
        if free:
            idle = Q(mdev_instances_used=0, **{f"mdev_types__{gpu.mdev_type}__max_instances__gt": 0})
            shared = Q(mdev_type_in_use=gpu.mdev_type, mdev_instances_used__lt=F("mdev_capacity"))
            devices = devices.filter(idle | shared, assigned_desktop_id__isnull=True)
    elif free:
        devices = devices.filter(assigned_desktop_id__isnull=True, mdev_instances_used=0)
    return Q(Exists(devices))


class GpuPresentFilter(HostFilter):
    name = "gpu_present"
    reason = "no_gpu"

    def applies(self, request: PlacementRequest) -> bool:
        return request.gpu.kind != GpuProfileKind.NONE

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return _devices(request, free=False)

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no host has {request.gpu.label}"


class SizeFilter(HostFilter):
    """The host could take the desktop if it were empty: tells "too big" from "full"."""

    name = "size"
    reason = "too_big"

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return Q(LessThanOrEqual(Value(float(request.vcpus)), vcpu_capacity_expression())) & Q(
            LessThanOrEqual(Value(float(request.memory_mib)), memory_capacity_expression())
        )

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        wanted = f"{_vcpus(request.vcpus)} and {_size(request.memory_mib)} RAM"
        hosts = list(survivors)
        if not hosts:
            return f"no host is big enough for {wanted}"
        cpus = max(h.vcpu_capacity for h in hosts)
        memory = max(h.memory_capacity_mib for h in hosts)
        return f"no host is big enough for {wanted}: the largest offer {_vcpus(cpus)} and {_size(memory)} RAM"


class CpuFilter(HostFilter):
    name = "cpu"
    reason = "full"

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return Q(LessThanOrEqual(F("allocated_vcpus") + request.vcpus, vcpu_capacity_expression()))

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no enabled host has {_vcpus(request.vcpus)} free"


class RamFilter(HostFilter):
    name = "ram"
    reason = "full"

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return Q(LessThanOrEqual(F("allocated_memory_mib") + request.memory_mib, memory_capacity_expression()))

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no enabled host has {_size(request.memory_mib)} RAM free"


class GpuFreeFilter(HostFilter):
    name = "gpu_free"
    reason = "gpu_busy"

    def applies(self, request: PlacementRequest) -> bool:
        return request.gpu.kind != GpuProfileKind.NONE

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        return _devices(request, free=True)

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"every host with {request.gpu.label} has it in use"


# In diagnosis order: the first filter that leaves no host names the reason.
FILTERS: tuple[HostFilter, ...] = (
    ExcludeFilter(),
    EnabledFilter(),
    AvailabilityFilter(),
    HealthFilter(),
    VirtTypeFilter(),
    ImageFilter(),
    GpuPresentFilter(),
    SizeFilter(),
    CpuFilter(),
    RamFilter(),
    GpuFreeFilter(),
)

# What a claim re-checks in its UPDATE: the host-row filters that can change between rank and claim.
_CLAIM_FILTERS = (EnabledFilter(), AvailabilityFilter(), HealthFilter(), CpuFilter(), RamFilter())


def _conditions(request: PlacementRequest, now: datetime, filters: tuple[HostFilter, ...] = FILTERS) -> Q:
    combined = Q()
    for host_filter in filters:
        if host_filter.applies(request):
            combined &= host_filter.condition(request, now)
    return combined


# ------------------------------------------------------------------------------------ weighers


@dataclass(frozen=True)
class Weigher:
    """A host's score in [0, 1] as SQL: 1 is the emptiest host, so spread prefers high scores."""

    name: ClassVar[str] = ""
    multiplier: float = 1.0

    def expression(self):
        raise NotImplementedError


class RamWeigher(Weigher):
    name = "ram"

    def expression(self):
        capacity = NullIf(memory_capacity_expression(), Value(0.0))
        return (capacity - F("allocated_memory_mib")) / capacity


class CpuWeigher(Weigher):
    name = "cpu"

    def expression(self):
        capacity = NullIf(vcpu_capacity_expression(), Value(0.0))
        return (capacity - F("allocated_vcpus")) / capacity


def weighers(strategy: SchedulerStrategy | None = None) -> tuple[Weigher, ...]:
    """RAM then CPU, positive for spread (emptiest first) and negative for pack (fullest first)."""
    strategy = strategy or conf.scheduler_strategy()
    sign = 1.0 if strategy == SchedulerStrategy.SPREAD else -1.0
    # RAM counts double: it is what runs out first on desktop hosts (CPU is overcommitted).
    return (RamWeigher(multiplier=2.0 * sign), CpuWeigher(multiplier=1.0 * sign))


def rank(
    request: PlacementRequest,
    *,
    now: datetime | None = None,
    limit: int | None = None,
    strategy: SchedulerStrategy | None = None,
) -> list[int]:
    """Ids of the hosts that pass every filter, best weighed first (ties: lowest id)."""
    now = now or timezone.now()
    weight = Value(0.0)
    for weigher in weighers(strategy):
        weight = weight + Value(weigher.multiplier) * weigher.expression()
    ranked = (
        Host.objects.filter(_conditions(request, now))
        .annotate(weight=weight)
        .order_by(F("weight").desc(nulls_last=True), "pk")
        .values_list("pk", flat=True)
    )
    return list(ranked[:limit] if limit else ranked)


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


def _claim(request: PlacementRequest, host_id: int, now: datetime) -> Placement | None:
    """Add the desktop to the host's counters if it still fits, in one transaction; None if not."""
    try:
        with transaction.atomic():
            # The WHERE re-checks capacity against the row as it is now: on PostgreSQL a concurrent
            # claim holds the row lock and the condition is re-evaluated once it commits.
            won = (
                Host.objects.filter(pk=host_id)
                .filter(_conditions(request, now, _CLAIM_FILTERS))
                .update(
                    allocated_vcpus=F("allocated_vcpus") + request.vcpus,
                    allocated_memory_mib=F("allocated_memory_mib") + request.memory_mib,
                )
            )
            if not won:
                return None
            device_id = None if request.gpu.kind == GpuProfileKind.NONE else _claim_device(request, host_id)
            Allocation.objects.create(
                desktop_id=request.desktop_id,
                host_id=host_id,
                vcpus=request.vcpus,
                memory_mib=request.memory_mib,
                gpu_profile=request.gpu_profile or GpuProfileKind.NONE,
                gpu_device_id=device_id,
            )
    except _Lost:
        return None
    return Placement(host_id=host_id, gpu_device_id=device_id)


def _diagnose(request: PlacementRequest, now: datetime) -> NoCapacity:
    """Apply the filters one by one and name the first that leaves no host."""
    hosts = Host.objects.all()
    if not hosts.exists():
        return NoCapacity("no host is registered", reason="no_host")
    for host_filter in FILTERS:
        if not host_filter.applies(request):
            continue
        narrowed = hosts.filter(host_filter.condition(request, now))
        if not narrowed.exists():
            return NoCapacity(host_filter.message(request, hosts), reason=host_filter.reason)
        hosts = narrowed
    # Every filter passes now: concurrent placements took the room and then released it.
    return NoCapacity("hosts were full while placing; try again", reason="full")


def place(request: PlacementRequest) -> Placement:
    """Place a desktop, or raise NoCapacity naming why; a desktop already placed keeps its host."""
    existing = _existing(request.desktop_id)
    if existing is not None:
        return existing
    now = timezone.now()
    for _attempt in range(MAX_ATTEMPTS):
        now = timezone.now()
        candidates = rank(request, now=now, limit=conf.scheduler_candidates())
        if not candidates:
            break
        for host_id in candidates:
            try:
                placement = _claim(request, host_id, now)
            except IntegrityError:
                # The same desktop was placed concurrently: its allocation stands, ours rolled back.
                existing = _existing(request.desktop_id)
                if existing is None:
                    raise
                return existing
            if placement is not None:
                return placement
    raise _diagnose(request, now)


def release(desktop_id: int) -> None:
    """Give back what a desktop held; releasing twice, or a desktop never placed, does nothing."""
    try:
        with transaction.atomic():
            allocation = Allocation.objects.filter(desktop_id=desktop_id).first()
            if allocation is None:
                return
            # Host row first, as in claims, so the two never wait on each other in opposite order.
            Host.objects.filter(pk=allocation.host_id).update(
                allocated_vcpus=Greatest(F("allocated_vcpus") - allocation.vcpus, Value(0)),
                allocated_memory_mib=Greatest(F("allocated_memory_mib") - allocation.memory_mib, Value(0)),
            )
            if allocation.gpu_device_id is not None:
                _release_device(allocation)
            deleted, _ = Allocation.objects.filter(pk=allocation.pk).delete()
            if not deleted:
                raise _Lost  # a concurrent release got there first; undo our decrement
    except _Lost:
        return


def _release_device(allocation: Allocation) -> None:
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
    hosts = list(Host.objects.filter(_conditions(request, timezone.now())))
    gpu = request.gpu
    devices: dict[int, list[HostDevice]] = {}
    if gpu.kind != GpuProfileKind.NONE:
        for device in HostDevice.objects.filter(host__in=hosts, present=True):
            devices.setdefault(device.host_id, []).append(device)
    total = 0
    for host in hosts:
        count = min(host.free_vcpus // vcpus, host.free_capacity_mib // memory_mib)
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
        for device in HostDevice.objects.select_for_update().filter(host_id=host_id):
            drifted |= _resync_device(device)
    return drifted


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
