"""Moving a placed desktop's claim to another host (the destination of a live migration)."""

from __future__ import annotations

import dataclasses

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext

from hosts import conf
from hosts.choices import GpuProfileKind
from hosts.models import Allocation, Host
from hosts.scheduling.filters import CLAIM_FILTERS, condition
from hosts.scheduling.placement import _diagnose, lock_host, rank, unmeasure
from hosts.scheduling.request import Placement, PlacementRequest
from quetzal.errors import ServiceError


class _Lost(Exception):
    """The destination filled up between ranking and claiming."""


def _move(allocation_id: int, target_id: int, request: PlacementRequest | None) -> Placement:
    """Inside a transaction: count the desktop on target (re-checking the rules unless forced), uncount the source."""
    now = timezone.now()
    target = Host.objects.filter(pk=target_id)
    if request is not None:
        target = target.filter(condition(request, now, CLAIM_FILTERS))
    # The source host's row before the allocation's, as heartbeats lock them (placement._locked_allocation).
    lock_host(Allocation.objects.values_list("host_id", flat=True).get(pk=allocation_id))
    allocation = Allocation.objects.select_for_update().get(pk=allocation_id)
    if allocation.host_id == target_id:
        return Placement(host_id=target_id, gpu_device_id=None)
    if not target.update(
        allocated_vcpus=F("allocated_vcpus") + allocation.vcpus,
        allocated_memory_mib=F("allocated_memory_mib") + allocation.memory_mib,
    ):
        raise _Lost
    Host.objects.filter(pk=allocation.host_id).update(
        allocated_vcpus=Greatest(F("allocated_vcpus") - allocation.vcpus, Value(0)),
        allocated_memory_mib=Greatest(F("allocated_memory_mib") - allocation.memory_mib, Value(0)),
        **unmeasure(allocation),
    )
    # Measured on the source only: on the target it counts at its allocation until a heartbeat measures it.
    Allocation.objects.filter(pk=allocation.pk).update(host_id=target_id, measured_memory_mib=None)
    return Placement(host_id=target_id, gpu_device_id=None)


def relocate(request: PlacementRequest, *, target_host_id: int | None = None) -> Placement:
    """Move a placed desktop's claim to the best other host (or the one named), or raise NoCapacity.

    The claim moves before the VM does, so nothing else is placed into the room the VM will need;
    a migration that then fails moves it back with `return_to`.
    """
    allocation = Allocation.objects.filter(desktop_id=request.desktop_id).first()
    if allocation is None:
        raise ServiceError(gettext("The desktop is not placed on a host."), code="not_placed")
    if allocation.gpu_device_id is not None or request.gpu.kind != GpuProfileKind.NONE:
        raise ServiceError(gettext("Desktops holding a GPU cannot be moved while running."), code="not_movable")
    request = dataclasses.replace(
        request,
        vcpus=allocation.vcpus,
        memory_mib=allocation.memory_mib,
        exclude_host_ids=request.exclude_host_ids | {allocation.host_id},
    )
    now = timezone.now()
    candidates = rank(request, now=now, limit=conf.scheduler_candidates())
    if target_host_id is not None:
        candidates = [target_host_id] if target_host_id in candidates else []
    for host_id in candidates:
        try:
            with transaction.atomic():
                return _move(allocation.pk, host_id, request)
        except _Lost:
            continue
    raise _diagnose(request, now)


def return_to(desktop_id: int, host_id: int) -> None:
    """Put a desktop's claim back on the host it never left (a failed migration); no rules re-checked."""
    allocation = Allocation.objects.filter(desktop_id=desktop_id).first()
    if allocation is None:
        return
    with transaction.atomic():
        _move(allocation.pk, host_id, None)
