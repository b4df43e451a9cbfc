"""Resizing a personal desktop: vCPUs and RAM while it is stopped, the disk (grow only) stopped or running.

The web side checks everything it can decide from rows (policy, bounds, quotas, the host's room) under the
tenant's lock and queues a `resize` operation; the worker (`execution.do_resize`) claims the host's room,
changes the VM and only then writes the new size, so a failure leaves the desktop as it was. Live vCPU
hot-plug and RAM growth through the balloon are not offered: the domains are defined with their vCPUs and
memory as maximum (no headroom to grow into), so those changes apply at the next boot.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from desktops.choices import DesktopKind, DesktopState, OperationKind
from desktops.models import Desktop, Operation
from desktops.services import quotas, sizes
from desktops.services.requests import _new_operation
from desktops.signals import desktop_resized
from desktops.state import ACTIONS
from hosts import scheduling
from hosts.models import Host
from quetzal.errors import Conflict, ServiceError
from tenants import events


def request_resize(
    *,
    desktop: Desktop,
    actor,
    size: str = "",
    vcpus: int | None = None,
    memory_mib: int | None = None,
    disk_gib: int | None = None,
    ip: str | None = None,
) -> Operation:
    """Queue a resize of the desktop to the size asked for (what is left out stays as it is)."""
    if desktop.kind != DesktopKind.PERSONAL:
        raise ServiceError(
            "Pooled desktops keep their template's size; resize a personal desktop.", code="not_personal"
        )
    with transaction.atomic():
        # Taken before the desktop is read: the state, the quotas and the new operation are one step.
        tenant = quotas.lock(desktop.tenant)
        quotas.ensure_tenant_active(tenant)
        sizes.ensure_may_choose(tenant=tenant, actor=actor, what="resize desktops")
        desktop.refresh_from_db()
        if desktop.state not in ACTIONS[OperationKind.RESIZE].sources:
            raise Conflict(
                f"Cannot resize {desktop.name} while it is {desktop.get_state_display().lower()}.",
                code="invalid_state",
            )
        current = sizes.of_desktop(desktop)
        wanted = sizes.resolve(
            desktop.template, size=size, vcpus=vcpus, memory_mib=memory_mib, disk_gib=disk_gib, base=current
        )
        _check_change(desktop, current, wanted)
        quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=wanted.vcpus, memory_mib=wanted.memory_mib)
        quotas.ensure_can_grow_disk(tenant=tenant, more_gib=wanted.disk_gib - current.disk_gib)
        _ensure_room_on_host(desktop, current, wanted)
        params = {"from": current.as_dict(), "to": wanted.as_dict()}
        operation = _new_operation(desktop=desktop, kind=OperationKind.RESIZE, actor=actor, params=params)
        events.desktop_action(kind=OperationKind.RESIZE, actor=actor, desktop=desktop, params=params, ip=ip)
    return operation


def _check_change(desktop: Desktop, current: sizes.Size, wanted: sizes.Size) -> None:
    if wanted.disk_gib < current.disk_gib:
        raise ServiceError(
            f"Disks only grow: {desktop.name} has {current.disk_gib} GiB, and a smaller disk would cut off its files.",
            code="disk_shrink",
        )
    compute_changes = (wanted.vcpus, wanted.memory_mib) != (current.vcpus, current.memory_mib)
    if compute_changes and desktop.state != DesktopState.STOPPED:
        raise Conflict(
            f"Stop {desktop.name} first: vCPUs and RAM change while it is stopped (the disk can grow while it runs).",
            code="resize_needs_stop",
        )
    if (wanted.vcpus, wanted.memory_mib, wanted.disk_gib) == (current.vcpus, current.memory_mib, current.disk_gib):
        raise ServiceError(f"{desktop.name} already has {current.label}.", code="size_unchanged")


def _ensure_room_on_host(desktop: Desktop, current: sizes.Size, wanted: sizes.Size) -> None:
    """A bigger desktop must fit on the host it lives on (its disk and VM are there); the worker claims it."""
    more_vcpus, more_memory = wanted.vcpus - current.vcpus, wanted.memory_mib - current.memory_mib
    if desktop.host_id is None or (more_vcpus <= 0 and more_memory <= 0):
        return
    host = Host.objects.filter(pk=desktop.host_id).first()
    if host is None:
        return
    if more_vcpus > host.free_vcpus or more_memory > host.free_capacity_mib:
        raise Conflict(
            f"{host.name} has room for {host.free_vcpus} more vCPUs and {host.free_capacity_mib} MiB more RAM; "
            f"this resize needs {max(more_vcpus, 0)} and {max(more_memory, 0)}.",
            code="no_host_capacity",
        )


# --- the worker's side: called by execution.do_resize once the VM has changed ------------------------------


def claim_host_room(desktop: Desktop, wanted: sizes.Size) -> bool:
    """Hold the new vCPUs and RAM on the desktop's host; False when it no longer has the room."""
    return scheduling.resize(desktop.pk, vcpus=wanted.vcpus, memory_mib=wanted.memory_mib)


def record_size(desktop: Desktop, wanted: sizes.Size) -> None:
    """Write the size the VM now has, and tell billing from when it applies."""
    now = timezone.now()
    with transaction.atomic():
        Desktop.objects.filter(pk=desktop.pk).update(
            vcpus=wanted.vcpus, memory_mib=wanted.memory_mib, disk_gib=wanted.disk_gib, size_name=wanted.name
        )
        desktop.vcpus, desktop.memory_mib, desktop.disk_gib, desktop.size_name = (
            wanted.vcpus,
            wanted.memory_mib,
            wanted.disk_gib,
            wanted.name,
        )
        desktop_resized.send(sender=Desktop, desktop_id=desktop.pk, at=now)
