"""Nova-style host filters, each one SQL condition used by ranking, claiming, counting and diagnosis."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.db.models.query import QuerySet
from django.utils.translation import gettext

from hosts import conf
from hosts.choices import CopyState, GpuProfileKind, HostState
from hosts.models import Host, Image
from hosts.scheduling.request import PlacementRequest
from hosts.scheduling.sql import (
    COPY,
    DEVICE,
    MEMORY_CAPACITY,
    MEMORY_LOAD,
    OVERCOMMITS,
    PHYSICAL_MEMORY,
    UNMEASURED_MEMORY,
    VCPU_CAPACITY,
    device,
    host,
    json_has_key,
    json_int,
    timestamp,
)

Fragment = tuple[str, list]


def size_label(mib: int | float) -> str:
    """RAM in the unit an operator would write."""
    mib = int(mib)
    return f"{mib // 1024} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"


def vcpus_label(count: int) -> str:
    return f"{count} vCPU" if count == 1 else f"{count} vCPUs"


class HostFilter:
    """One placement rule: a SQL condition on hosts_host, and what to say when it leaves no host."""

    name: ClassVar[str] = ""
    reason: ClassVar[str] = "no_host"

    def applies(self, request: PlacementRequest) -> bool:
        return True

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        raise NotImplementedError

    def condition(self, request: PlacementRequest, now: datetime) -> Q:
        """The same condition for ORM querysets on Host."""
        fragment, params = self.sql(request, now)
        return Q(RawSQL(fragment, params, output_field=BooleanField()))

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        """Why no host passed, given the hosts that passed every earlier filter."""
        raise NotImplementedError


class ExcludeFilter(HostFilter):
    name = "exclude"
    reason = "excluded"

    def applies(self, request: PlacementRequest) -> bool:
        return bool(request.exclude_host_ids)

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        ids = sorted(request.exclude_host_ids)
        return f"{host('id')} NOT IN ({', '.join(['%s'] * len(ids))})", ids

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return "no host is left once the excluded hosts are set aside"


class EnabledFilter(HostFilter):
    name = "enabled"

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return host("enabled"), []

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return "no host is enabled"


class AvailabilityFilter(HostFilter):
    name = "availability"

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return f"NOT {host('maintenance')} AND NOT {host('drain')}", []

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return "every enabled host is in maintenance or draining"


class HealthFilter(HostFilter):
    """Up, and heard from recently: the state alone lags until mark_stale_hosts_down runs."""

    name = "health"
    reason = "hosts_down"

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        cutoff = now - timedelta(seconds=conf.host_down_after_s())
        return f"{host('state')} = %s AND {host('last_heartbeat_at')} >= %s", [HostState.UP.value, timestamp(cutoff)]

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no enabled host is up (none answered in the last {conf.host_down_after_s():g} s)"


class VirtTypeFilter(HostFilter):
    name = "virt_type"
    reason = "virt_type"

    def applies(self, request: PlacementRequest) -> bool:
        return bool(request.virt_type)

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        override, detected = host("virt_type"), host("detected_virt_type")
        return f"({override} = %s OR ({override} = '' AND {detected} = %s))", [request.virt_type] * 2

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no usable host runs {request.virt_type} guests"


PLATFORM_LABELS = {
    "offers_uefi": "UEFI firmware",
    "offers_secure_boot": "Secure Boot",
    "offers_tpm": "a TPM 2.0",
}


class PlatformFilter(HostFilter):
    """Hosts whose QEMU offers the guest's firmware and TPM.

    A host that could not say (None: libvirt's test driver, or a host not heard from since this was learnt) is
    not refused: every real libvirt answers on its next heartbeat, and until then it places as it did before.
    """

    name = "platform"
    reason = "no_platform"

    def applies(self, request: PlacementRequest) -> bool:
        return bool(request.platform_needs)

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return " AND ".join(f"{host(field)} IS NOT FALSE" for field in request.platform_needs), []

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        wanted = " and ".join(PLATFORM_LABELS[field] for field in request.platform_needs)
        return (
            f"no usable host offers {wanted} for this template's guests "
            "(install ovmf and swtpm on the hosts; manage.py doctor checks each one)"
        )


class ImageFilter(HostFilter):
    """Only hosts holding a ready copy: a desktop must not wait for a multi-GB transfer at launch."""

    name = "image"
    reason = "no_image"

    def applies(self, request: PlacementRequest) -> bool:
        return request.image_id is not None

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return (
            f'EXISTS (SELECT 1 FROM {COPY} WHERE {COPY}."host_id" = {host("id")} '
            f'AND {COPY}."image_id" = %s AND {COPY}."state" = %s)',
            [request.image_id, CopyState.READY.value],
        )

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        if request.image_id is None:
            return "no image was asked for"
        name = Image.objects.filter(pk=request.image_id).values_list("name", flat=True).first()
        if name is None:
            return f"image {request.image_id} does not exist"
        return f"image {name!r} is not ready on any usable host; copy it to the hosts first"


def gpu_sql(request: PlacementRequest, *, free: bool) -> Fragment:
    """EXISTS a present device on the host matching the GPU need (with room on it, when free)."""
    gpu = request.gpu
    conditions = [f"{device('host_id')} = {host('id')}", device("present")]
    params: list = []
    if gpu.kind == GpuProfileKind.MDEV:
        has_type, type_params = json_has_key(device("mdev_types"), gpu.mdev_type)
        conditions.append(has_type)
        params += type_params
        if free:
            most, most_params = json_int(device("mdev_types"), gpu.mdev_type, "max_instances")
            used = device("mdev_instances_used")
            conditions.append(f"{device('assigned_desktop_id')} IS NULL")
            # Idle (the type's full count is open), or already serving this type with room left.
            conditions.append(
                f"(({used} = 0 AND {most} > 0) OR ({device('mdev_type_in_use')} = %s AND {used} < "
                f"{device('mdev_capacity')}))"
            )
            params += [*most_params, gpu.mdev_type]
    elif free:
        conditions.append(f"{device('assigned_desktop_id')} IS NULL AND {device('mdev_instances_used')} = 0")
    return f"EXISTS (SELECT 1 FROM {DEVICE} WHERE {' AND '.join(conditions)})", params


class GpuPresentFilter(HostFilter):
    name = "gpu_present"
    reason = "no_gpu"

    def applies(self, request: PlacementRequest) -> bool:
        return request.gpu.kind != GpuProfileKind.NONE

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return gpu_sql(request, free=False)

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no host has {request.gpu.label}"


class SizeFilter(HostFilter):
    """The host could take the desktop if it were empty: tells "too big" from "full"."""

    name = "size"
    reason = "too_big"

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return f"%s <= {VCPU_CAPACITY} AND %s <= {MEMORY_CAPACITY}", [request.vcpus, request.memory_mib]

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        wanted = f"{vcpus_label(request.vcpus)} and {size_label(request.memory_mib)} RAM"
        hosts = list(survivors)
        if not hosts:
            return f"no host is big enough for {wanted}"
        cpus = max(h.vcpu_capacity for h in hosts)
        memory = max(h.memory_capacity_mib for h in hosts)
        return f"no host is big enough for {wanted}: the largest offer {vcpus_label(cpus)} and {size_label(memory)} RAM"


class CpuFilter(HostFilter):
    name = "cpu"
    reason = "full"

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return f"({host('allocated_vcpus')} + %s) <= {VCPU_CAPACITY}", [request.vcpus]

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no enabled host has {vcpus_label(request.vcpus)} free"


def ram_room_sql(more_mib_sql: str, more_load_sql: str | None = None) -> str:
    """SQL: the host's RAM takes more_mib_sql MiB more allocation, weighing more_load_sql more (default the same).

    Allocation stays within ram_ratio x (memory - reserve). Under overcommit (ram_ratio > 1) the desktops'
    measured load plus the new one must also fit the memory itself; at ratio 1.0 the allocation rule alone
    applies, exactly as without overcommit.
    """
    return (
        f"({host('allocated_memory_mib')} + {more_mib_sql}) <= {MEMORY_CAPACITY} "
        f"AND (NOT {OVERCOMMITS} OR ({MEMORY_LOAD} + {more_load_sql or more_mib_sql}) <= {PHYSICAL_MEMORY})"
    )


def swap_guard_sql(more_mib_sql: str) -> str:
    """SQL: an overcommitting host keeps its reserve free after more_mib_sql MiB more (one %s parameter).

    Available memory is what the last heartbeat read (free + buffers + page cache); the desktops not measured
    then (placed since, or stopped) may take their whole allocation, and so may the new one.
    """
    return (
        f"NOT {OVERCOMMITS} OR "
        f"({host('free_memory_mib')} - {UNMEASURED_MEMORY} - {more_mib_sql} - {host('reserved_memory_mib')}) >= 0"
    )


class RamFilter(HostFilter):
    name = "ram"
    reason = "full"

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return ram_room_sql("%s"), [request.memory_mib, request.memory_mib]

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"no enabled host has {size_label(request.memory_mib)} RAM free"


class SwapGuardFilter(HostFilter):
    """Never place where the host would swap: only hosts that overcommit memory can get there."""

    name = "swap_guard"
    reason = "host_would_swap"

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return swap_guard_sql("%s"), [request.memory_mib]

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return gettext(
            "every host with room for %(memory)s RAM overcommits memory and would run short of free memory "
            "(it would swap)"
        ) % {"memory": size_label(request.memory_mib)}


class GpuFreeFilter(HostFilter):
    name = "gpu_free"
    reason = "gpu_busy"

    def applies(self, request: PlacementRequest) -> bool:
        return request.gpu.kind != GpuProfileKind.NONE

    def sql(self, request: PlacementRequest, now: datetime) -> Fragment:
        return gpu_sql(request, free=True)

    def message(self, request: PlacementRequest, survivors: QuerySet[Host]) -> str:
        return f"every host with {request.gpu.label} has it in use"


# In diagnosis order: the first filter that leaves no host names the reason.
FILTERS: tuple[HostFilter, ...] = (
    ExcludeFilter(),
    EnabledFilter(),
    AvailabilityFilter(),
    HealthFilter(),
    VirtTypeFilter(),
    PlatformFilter(),
    ImageFilter(),
    GpuPresentFilter(),
    SizeFilter(),
    CpuFilter(),
    RamFilter(),
    SwapGuardFilter(),
    GpuFreeFilter(),
)

# What a claim re-checks in its UPDATE: the host-row rules that can change between ranking and claiming.
CLAIM_FILTERS: tuple[HostFilter, ...] = (
    EnabledFilter(),
    AvailabilityFilter(),
    HealthFilter(),
    CpuFilter(),
    RamFilter(),
    SwapGuardFilter(),
)


def where(request: PlacementRequest, now: datetime, filters: tuple[HostFilter, ...] = FILTERS) -> Fragment:
    """The filters that apply to request, ANDed into one SQL condition."""
    parts, params = [], []
    for host_filter in filters:
        if host_filter.applies(request):
            fragment, fragment_params = host_filter.sql(request, now)
            parts.append(f"({fragment})")
            params += fragment_params
    return " AND ".join(parts) or "TRUE", params


def condition(request: PlacementRequest, now: datetime, filters: tuple[HostFilter, ...] = FILTERS) -> Q:
    """The filters that apply to request as one ORM condition on Host."""
    fragment, params = where(request, now, filters)
    return Q(RawSQL(fragment, params, output_field=BooleanField()))
