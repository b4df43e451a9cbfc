"""Resizing a personal desktop: vCPUs and RAM while it is stopped, the disk (grow only) stopped or running.

The web side checks everything it can decide from rows (policy, bounds, quotas, the host's room) under the
tenant's lock and queues a `resize` operation; the worker (`execution.do_resize`) claims the host's room,
changes the VM and only then writes the new size, so a failure leaves the desktop as it was. Live vCPU
hot-plug and RAM growth through the balloon are not offered: the domains are defined with their vCPUs and
memory as maximum (no headroom to grow into), so those changes apply at the next boot.

A disk grown while the desktop runs is bigger for the guest at once (QEMU tells its virtio driver), but the
guest's partition and filesystem take it up at its next boot: cloud-init's growpart and resize_rootfs run at
every boot, and the seed asks for them once the disk outgrows its image (desktops.services.spec.seed_config).
So a running desktop's grown disk is usable after its next restart.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

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
            gettext("Pooled desktops keep their template's size; resize a personal desktop."), code="not_personal"
        )
    with transaction.atomic():
        # Taken before the desktop is read: the state, the quotas and the new operation are one step.
        tenant = quotas.lock(desktop.tenant)
        quotas.ensure_tenant_active(tenant)
        sizes.ensure_may_choose(tenant=tenant, actor=actor, what="resize desktops")
        desktop.refresh_from_db()
        if desktop.state not in ACTIONS[OperationKind.RESIZE].sources:
            raise Conflict(
                gettext("Cannot resize %(name)s while it is %(lower)s.")
                % {"name": desktop.name, "lower": desktop.get_state_display().lower()},
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
            gettext("Disks only grow: %(name)s has %(disk_gib)s GiB, and a smaller disk would cut off its files.")
            % {"name": desktop.name, "disk_gib": current.disk_gib},
            code="disk_shrink",
        )
    compute_changes = (wanted.vcpus, wanted.memory_mib) != (current.vcpus, current.memory_mib)
    if compute_changes and desktop.state != DesktopState.STOPPED:
        raise Conflict(
            gettext("Stop %(name)s first: vCPUs and RAM change while it is stopped (the disk can grow while it runs).")
            % {"name": desktop.name},
            code="resize_needs_stop",
        )
    if (wanted.vcpus, wanted.memory_mib, wanted.disk_gib) == (current.vcpus, current.memory_mib, current.disk_gib):
        raise ServiceError(
            gettext("%(name)s already has %(label)s.") % {"name": desktop.name, "label": current.label},
            code="size_unchanged",
        )


def _ensure_room_on_host(desktop: Desktop, current: sizes.Size, wanted: sizes.Size) -> None:
    """A bigger desktop must fit on the host it lives on (its disk and VM are there); the worker claims it."""
    more_vcpus, more_memory = wanted.vcpus - current.vcpus, wanted.memory_mib - current.memory_mib
    if desktop.host_id is None or (more_vcpus <= 0 and more_memory <= 0):
        return
    host = Host.objects.filter(pk=desktop.host_id).first()
    if host is None:
        return
    if more_vcpus > host.free_vcpus or more_memory > host.placeable_memory_mib:
        raise Conflict(
            gettext(
                "%(name)s has room for %(free_vcpus)s more vCPUs and %(free_capacity_mib)s MiB more RAM; "
                "this resize needs %(max)s and %(max2)s."
            )
            % {
                "name": host.name,
                "free_vcpus": host.free_vcpus,
                "free_capacity_mib": host.placeable_memory_mib,
                "max": max(more_vcpus, 0),
                "max2": max(more_memory, 0),
            },
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
