"""The worker's side of the lifecycle: carry out one operation against the desktop's host."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from desktops.choices import TRANSITIONAL_STATES, DesktopState, OperationKind
from desktops.cloudinit import SeedConfig, build_seed_iso
from desktops.models import Desktop, DesktopSnapshot, Operation
from desktops.services import disk_keys, homes, network, progress, readiness, resize, sizes, spec
from desktops.services.guest_platform import guest_platform, placement_needs
from desktops.state import begin_action, finish_action, transition
from hosts import scheduling
from hosts.hypervisor import (
    DomainNotFound,
    DomainState,
    HostUnavailable,
    HypervisorError,
    NotSupported,
    get_hypervisor,
)
from hosts.models import Allocation, Host, HostDevice, ImageCopy
from hosts.services import images as image_services
from quetzal.errors import ServiceError

log = logging.getLogger(__name__)
GIB = 1024**3


class StepFailed(ServiceError):
    """A step could not be carried out; the message says which and why."""

    code = "operation_failed"


def run(operation_id: int, *, worker: str = "") -> Operation | None:
    """Run one operation to its end. HostUnavailable propagates (after requeueing) so the task retries."""
    operation = progress.begin(operation_id, worker=worker)
    if operation is None:
        return None  # already running elsewhere, finished, or deleted: nothing to do (idempotent)
    handler = HANDLERS[operation.kind]
    try:
        handler(operation)
    except HostUnavailable as error:
        progress.requeue(operation, message=str(error))
        raise
    except (ServiceError, HypervisorError) as error:
        _fail(operation, code=getattr(error, "code", "hypervisor_error"), message=getattr(error, "detail", str(error)))
    except Exception as error:
        log.exception("operation %s failed", operation.pk)
        _fail(operation, code="internal_error", message=f"Unexpected error: {error}")
    else:
        progress.succeed(operation)
    return operation


def fail_for_good(operation: Operation, message: str) -> None:
    """Give up on an operation after its retries (host unreachable too long)."""
    _fail(operation, code="host_unavailable", message=message)


def _fail(operation: Operation, *, code: str, message: str) -> None:
    progress.fail(operation, code=code, message=message)
    desktop = Desktop.objects.get(pk=operation.desktop_id)
    # A desktop left mid-transition would look busy forever; park it in error with the reason.
    if desktop.state in TRANSITIONAL_STATES:
        transition(desktop, DesktopState.ERROR, reason=f"{operation.get_kind_display()} failed: {message}")


def _host(desktop: Desktop) -> Host:
    if desktop.host_id is None:
        raise StepFailed(gettext("The desktop has not been placed on a host."), code="not_placed")
    return Host.objects.get(pk=desktop.host_id)


def _hv(desktop: Desktop):
    return get_hypervisor(_host(desktop).uri)


# One whole sentence per step: a verb put into another sentence reads wrong in German.
_CANNOT = {
    "start": gettext_lazy("Cannot start a desktop that is %(state)s."),
    "provision": gettext_lazy("Cannot provision a desktop that is %(state)s."),
    "rebuild": gettext_lazy("Cannot rebuild a desktop that is %(state)s."),
    "stop": gettext_lazy("Cannot stop a desktop that is %(state)s."),
    "hibernate": gettext_lazy("Cannot hibernate a desktop that is %(state)s."),
    "delete": gettext_lazy("Cannot delete a desktop that is %(state)s."),
}


def _state_words(desktop: Desktop) -> str:
    """The desktop's state in the reader's language, lower-case, not its stored value."""
    return desktop.get_state_display().lower()


def _begin(desktop: Desktop, kind: str, verb: str) -> None:
    """Move the desktop into the state `kind` passes through (lifecycle table), or refuse the step."""
    if not begin_action(desktop, kind):
        raise StepFailed(str(_CANNOT[verb]) % {"state": _state_words(desktop)}, code="invalid_state")


def _domain_exists(hv, name: str) -> bool:
    try:
        hv.state(name)
    except DomainNotFound:
        return False
    return True


# --- provisioning ----------------------------------------------------------------------------


def _provision(operation: Operation, desktop: Desktop) -> None:
    """Place, clone the disk, write the seed and define the domain (desktop is PROVISIONING)."""
    template = desktop.template
    progress.step(operation, "placing")
    placement = scheduling.place(
        scheduling.PlacementRequest(
            desktop_id=desktop.pk,
            vcpus=desktop.vcpus,
            memory_mib=desktop.memory_mib,
            image_id=template.image_id,
            gpu_profile=template.gpu_profile,
            prefer_host_id=homes.home_host_id(desktop),
            **placement_needs(template),
        )
    )
    Desktop.objects.filter(pk=desktop.pk).update(host_id=placement.host_id)
    desktop.host_id = placement.host_id
    host = Host.objects.get(pk=placement.host_id)
    hv = get_hypervisor(host.uri)

    progress.step(operation, "cloning disk")
    disk_name = spec.disk_volume_name(desktop)
    disk_secret_uuid = None
    capacity_bytes = (desktop.disk_gib or template.disk_gib) * GIB
    if disk_keys.encrypts_disks(host):
        plan = image_services.desktop_disk_plan(host=host, image=template.image, capacity_bytes=capacity_bytes)
        key, spare_path = disk_keys.claim_for(desktop=desktop, host=host, plan=plan)
        disk_path = image_services.create_encrypted_desktop_disk(
            host=host,
            plan=plan,
            volume_name=disk_name,
            spare_path=spare_path,
            passphrase=disk_keys.passphrase_of(key),
        )
        disk_keys.disk_made(key)
        disk_secret_uuid = str(key.uuid)
    else:
        disk_path = image_services.create_desktop_disk(
            host=host, image=template.image, volume_name=disk_name, capacity_bytes=capacity_bytes
        )
    Desktop.objects.filter(pk=desktop.pk).update(disk_volume=disk_name, disk_encrypted=disk_secret_uuid is not None)
    desktop.disk_encrypted = disk_secret_uuid is not None

    progress.step(operation, "writing seed")
    seed_name = spec.seed_volume_name(desktop)
    seed_path = _upload_seed(hv, host, desktop, seed_name)
    Desktop.objects.filter(pk=desktop.pk).update(seed_volume=seed_name)

    progress.step(operation, "connecting network")
    interface = network.attach(desktop, host)

    progress.step(operation, "defining")
    copy = ImageCopy.objects.filter(image=template.image, host=host).first()
    gpu = HostDevice.objects.filter(pk=placement.gpu_device_id).first() if placement.gpu_device_id else None
    hv.define(
        spec.domain_spec(
            desktop,
            disk_path=disk_path,
            seed_path=seed_path,
            image_copy=copy,
            host=host,
            gpu_device=gpu,
            interface=interface,
            disk_secret_uuid=disk_secret_uuid,
        )
    )


def _upload_seed(hv, host: Host, desktop: Desktop, volume_name: str, config: SeedConfig | None = None) -> str:
    data = build_seed_iso(config or spec.seed_config(desktop))
    with tempfile.NamedTemporaryFile(suffix=".iso", delete=False) as handle:
        handle.write(data)
    try:
        return hv.volume_upload(host.storage_pool, volume_name, handle.name, fmt="raw")
    except NotSupported:
        # Only libvirt's test driver lacks volume streams; every libvirtd has them. Keep the
        # CD-ROM in the VM definition so the domain shape is the same, just without content.
        log.warning("host %s cannot upload volumes; seed %s left empty", host.name, volume_name)
        return hv.volume_create(host.storage_pool, volume_name, len(data), fmt="raw")
    finally:
        os.unlink(handle.name)


def _boot(operation: Operation, desktop: Desktop, kind: str = OperationKind.START) -> None:
    """Boot the VM along the start (or restore) row: from a stopped state, through starting, to running."""
    _begin(desktop, kind, "start")
    hv = _hv(desktop)
    progress.step(operation, "booting")
    restored = hv.has_managed_save(desktop.domain_name)
    # The disk key exists in libvirt only while QEMU starts (an ephemeral secret), never on the host's disk.
    hv.start(desktop.domain_name, secrets=disk_keys.secrets_for(desktop))
    note = ""
    if homes.wants_home(desktop):
        progress.step(operation, "attaching home folder")
        note = homes.attach(desktop)
    finish_action(desktop, kind, reason=note)
    readiness.after_boot(desktop, restored=restored)
    # "running", not "ready": the guest says when it is ready for input (desktops.services.readiness).
    progress.step(operation, "running")


def do_create(operation: Operation) -> None:
    desktop = operation.desktop
    _begin(desktop, OperationKind.CREATE, "provision")
    _provision(operation, desktop)
    finish_action(desktop, OperationKind.CREATE, reason="")
    if operation.params.get("start", True):
        _boot(operation, desktop)
        if operation.params.get("hibernate_after"):
            _hibernate(operation, desktop, reason="Warm in the pool")


def do_rebuild(operation: Operation) -> None:
    desktop = operation.desktop
    _begin(desktop, OperationKind.REBUILD, "rebuild")
    progress.step(operation, "removing old disk")
    remove_from_host(desktop, release=True)
    DesktopSnapshot.objects.filter(desktop=desktop).delete()
    _provision(operation, desktop)
    finish_action(desktop, OperationKind.REBUILD, reason="Rebuilt from its template")


# --- power ------------------------------------------------------------------------------------


def do_start(operation: Operation) -> None:
    desktop = operation.desktop
    if desktop.host_id is None and desktop.state == DesktopState.ERROR:
        # Its create found no room and placed it nowhere: starting it places and provisions it now, along the
        # rebuild row (error -> provisioning -> stopped), then boots it.
        _begin(desktop, OperationKind.REBUILD, "provision")
        _provision(operation, desktop)
        finish_action(desktop, OperationKind.REBUILD, reason="")
        _boot(operation, desktop)
        return
    hv = _hv(desktop)
    if not _domain_exists(hv, desktop.domain_name):
        raise StepFailed(
            gettext("The desktop's VM is missing on its host; rebuild or delete it."), code="domain_missing"
        )
    _boot(operation, desktop, operation.kind)


def do_stop(operation: Operation) -> None:
    desktop = operation.desktop
    reason = operation.params.get("reason") or "Stopped on request"
    _begin(desktop, OperationKind.STOP, "stop")
    progress.step(operation, "shutting down")
    forced = not _hv(desktop).shutdown(desktop.domain_name, timeout_s=settings.DESKTOP_STOP_TIMEOUT_S)
    forced_note = " (forced off after the shutdown timeout)" if forced else ""
    # The VM is gone, and with it the live-plugged home: free it for the next desktop and the host side.
    homes.release(desktop=desktop)
    finish_action(desktop, OperationKind.STOP, reason=reason + forced_note)


def _hibernate(operation: Operation, desktop: Desktop, *, reason: str) -> None:
    # Before the transition, which forgets readiness: a guest saved while ready is ready again once restored.
    readiness.remember_saved(desktop)
    _begin(desktop, OperationKind.HIBERNATE, "hibernate")
    progress.step(operation, "saving memory")
    _hv(desktop).managed_save(desktop.domain_name)
    finish_action(desktop, OperationKind.HIBERNATE, reason=reason)


def do_hibernate(operation: Operation) -> None:
    _hibernate(operation, operation.desktop, reason=operation.params.get("reason") or "Hibernated on request")


def do_reboot(operation: Operation) -> None:
    progress.step(operation, "rebooting")
    _hv(operation.desktop).reboot(operation.desktop.domain_name)


def do_suspend(operation: Operation) -> None:
    desktop = operation.desktop
    _hv(desktop).suspend(desktop.domain_name)
    finish_action(desktop, OperationKind.SUSPEND, reason="Paused on request")


def do_resume(operation: Operation) -> None:
    desktop = operation.desktop
    _hv(desktop).resume(desktop.domain_name)
    finish_action(desktop, OperationKind.RESUME, reason="")


def do_attach_home(operation: Operation) -> None:
    progress.step(operation, "attaching home folder")
    note = homes.attach(operation.desktop)
    Desktop.objects.filter(pk=operation.desktop_id).update(status_reason=note)


# --- snapshots --------------------------------------------------------------------------------


def do_snapshot(operation: Operation) -> None:
    desktop, name = operation.desktop, operation.params["snapshot"]
    progress.step(operation, "snapshotting")
    hv = _hv(desktop)
    hv.snapshot_create(desktop.domain_name, name)
    running = hv.state(desktop.domain_name).is_active
    DesktopSnapshot.objects.get_or_create(desktop=desktop, name=name, defaults={"running": running})


def do_revert(operation: Operation) -> None:
    desktop, name = operation.desktop, operation.params["snapshot"]
    hv = _hv(desktop)
    progress.step(operation, "reverting")
    hv.snapshot_revert(desktop.domain_name, name, secrets=disk_keys.secrets_for(desktop))
    # The VM is now in the snapshot's power state; make the record follow along the start or stop row.
    now_running = hv.state(desktop.domain_name).is_active
    if now_running and desktop.state == DesktopState.STOPPED:
        follow = OperationKind.START
    elif not now_running and desktop.state == DesktopState.RUNNING:
        follow = OperationKind.STOP
    else:
        return
    if begin_action(desktop, follow):
        # A revert that boots the desktop plugs its person's home in, as a start does (snapshots never hold it).
        note = homes.attach(desktop) if follow == OperationKind.START and homes.wants_home(desktop) else ""
        finish_action(desktop, follow, reason=note or f"Reverted to {name}")


def do_delete_snapshot(operation: Operation) -> None:
    desktop, name = operation.desktop, operation.params["snapshot"]
    _hv(desktop).snapshot_delete(desktop.domain_name, name)
    DesktopSnapshot.objects.filter(desktop=desktop, name=name).delete()


# --- resizing ---------------------------------------------------------------------------------


def do_resize(operation: Operation) -> None:
    """Apply a resize: room on the host, then the VM's definition (stopped) and disk, then the new size's row."""
    desktop = operation.desktop
    wanted = sizes.Size(**operation.params["to"])
    current = sizes.of_desktop(desktop)
    if wanted == current:
        return  # a retried operation that already did it
    compute = (wanted.vcpus, wanted.memory_mib) != (current.vcpus, current.memory_mib)
    host = _host(desktop)
    hv = get_hypervisor(host.uri)
    if compute:
        # The VM reads its vCPUs and RAM at boot: change them only while it is off.
        if desktop.state != DesktopState.STOPPED or hv.state(desktop.domain_name).is_active:
            raise StepFailed(
                gettext("vCPUs and RAM change only while the desktop is stopped."), code="resize_needs_stop"
            )
        progress.step(operation, "claiming host room")
        if not resize.claim_host_room(desktop, wanted):
            raise StepFailed(
                gettext("%(name)s no longer has room for %(label)s.") % {"name": host.name, "label": wanted.label},
                code="no_host_capacity",
            )
        progress.step(operation, "redefining")
        try:
            _redefine(hv, host, desktop, wanted)
        except Exception:
            resize.claim_host_room(desktop, current)  # give the room back: nothing changed
            raise
    if wanted.disk_gib > current.disk_gib:
        progress.step(operation, "growing disk")
        # The running guest learns the new size through its system disk's device (sda on SATA, vda on virtio).
        target = guest_platform(desktop.template, virt_type=host.effective_virt_type).disk_target
        try:
            if desktop.disk_encrypted:
                key = disk_keys.disk_key_of(desktop)
                hv.encrypted_disk_grow(
                    desktop.domain_name,
                    _disk_path(hv, host, desktop),
                    disk_keys.passphrase_of(key),
                    wanted.disk_gib * GIB,
                    target_dev=target,
                )
            else:
                hv.disk_grow(
                    desktop.domain_name,
                    host.storage_pool,
                    spec.disk_volume_name(desktop),
                    wanted.disk_gib * GIB,
                    target_dev=target,
                )
        except Exception:
            if compute:  # the disk could not grow: undo the vCPU/RAM part too, so the desktop is as it was
                _redefine(hv, host, desktop, current)
                resize.claim_host_room(desktop, current)
            raise
        _refresh_seed(operation, hv, host, desktop, current, wanted)
    resize.record_size(desktop, wanted)
    progress.step(operation, "resized")


def _refresh_seed(
    operation: Operation, hv, host: Host, desktop: Desktop, current: sizes.Size, wanted: sizes.Size
) -> None:
    """Write the seed again when the grown disk changes what it asks for (growpart once it outgrows its image).

    The guest's partition and filesystem grow at its next boot (cloud-init's growpart and resize_rootfs run at
    every boot); a running guest sees the bigger disk at once but uses it after it restarts. A seed that cannot be
    written leaves the resize done: the disk has grown, and cloud-init's own defaults grow the root as well.
    """
    after = spec.seed_after_growth(desktop, from_gib=current.disk_gib, to_gib=wanted.disk_gib)
    name = desktop.seed_volume
    if after is None or not name:
        return
    progress.step(operation, "updating seed")
    try:
        # The same volume name: the domain's CD-ROM points at it. A running QEMU keeps the old file open until
        # it stops, so the new seed is read at the next cold boot.
        hv.volume_delete(host.storage_pool, name)
        _upload_seed(hv, host, desktop, name, after)
    except HypervisorError:
        log.exception("seed of desktop %s not rewritten after its disk grew", desktop.pk)
        with contextlib.suppress(HypervisorError):
            # Never leave the domain pointing at no file: an empty CD-ROM still boots.
            hv.volume_create(host.storage_pool, name, 2048, fmt="raw")


def _redefine(hv, host: Host, desktop: Desktop, wanted: sizes.Size) -> None:
    """Define the desktop's domain again at the new vCPUs and RAM, with the disks it has."""
    sized = Desktop.objects.select_related("template__image", "tenant").get(pk=desktop.pk)
    sized.vcpus, sized.memory_mib = wanted.vcpus, wanted.memory_mib
    disk_path = _disk_path(hv, host, sized)
    seed_path = hv.volume_path(host.storage_pool, sized.seed_volume) if sized.seed_volume else None
    copy = ImageCopy.objects.filter(image=sized.template.image, host=host).first()
    gpu_id = Allocation.objects.filter(desktop_id=sized.pk).values_list("gpu_device_id", flat=True).first()
    gpu = HostDevice.objects.filter(pk=gpu_id).first() if gpu_id else None
    key = disk_keys.disk_key_of(sized) if sized.disk_encrypted else None
    hv.define(
        spec.domain_spec(
            sized,
            disk_path=disk_path,
            seed_path=seed_path,
            image_copy=copy,
            host=host,
            gpu_device=gpu,
            # The lease it has on its tenant's network (attach is idempotent): a definition without it loses the NIC.
            interface=network.attach(sized, host),
            disk_secret_uuid=str(key.uuid) if key else None,
        )
    )


def _disk_path(hv, host: Host, desktop: Desktop) -> str:
    """The desktop's disk on its host; an encrypted one is made by qemu-img, so libvirt may not list it."""
    name = desktop.disk_volume or spec.disk_volume_name(desktop)
    if desktop.disk_encrypted:
        return os.path.join(hv.pool_path(host.storage_pool), name)
    return hv.volume_path(host.storage_pool, name)


# --- deletion ---------------------------------------------------------------------------------


def remove_from_host(desktop: Desktop, *, release: bool) -> None:
    """Destroy and undefine the domain, delete its volumes, give back its lease; each tolerates 'already gone'."""
    if desktop.host_id is not None:
        host = Host.objects.get(pk=desktop.host_id)
        hv = get_hypervisor(host.uri)
        try:
            if hv.state(desktop.domain_name) != DomainState.SHUTOFF:
                hv.destroy(desktop.domain_name)
            hv.undefine(desktop.domain_name)
        except DomainNotFound:
            pass
        # Only the desktop's own volumes: a recycled desktop never touches the person's home disk.
        for volume in (spec.disk_volume_name(desktop), spec.seed_volume_name(desktop)):
            hv.volume_delete(host.storage_pool, volume)
        if hv.supports_disk_encryption:
            # An encrypted disk is made by qemu-img, so libvirt's pool may not list it yet.
            hv.encrypted_file_delete(os.path.join(hv.pool_path(host.storage_pool), spec.disk_volume_name(desktop)))
    homes.release(desktop=desktop)
    # Crypto-erase: without its key the disk is noise, wherever a copy of the file went.
    disk_keys.erase_desktop_key(desktop, why="disk removed")
    # After the domain: a filter still in use by a guest cannot be removed.
    network.detach(desktop)
    if release:
        scheduling.release(desktop.pk)


def finish_delete(desktop: Desktop) -> None:
    """Remove everything of a DELETING desktop and mark it deleted (reconcile reuses this)."""
    remove_from_host(desktop, release=True)
    finish_action(desktop, OperationKind.DELETE, deleted_at=timezone.now(), disk_volume="", seed_volume="")


def do_delete(operation: Operation) -> None:
    desktop = operation.desktop
    # Already deleting: reconcile or an earlier attempt began it; finishing is safe to repeat.
    if desktop.state != DesktopState.DELETING:
        _begin(desktop, OperationKind.DELETE, "delete")
    progress.step(operation, "deleting")
    finish_delete(desktop)


# --- live migration --------------------------------------------------------------------------


def do_migrate(operation: Operation) -> None:
    """Move a running desktop to another host without stopping it (disk copied during the move)."""
    desktop = operation.desktop
    if desktop.state != DesktopState.RUNNING:
        raise StepFailed(
            gettext("Only a running desktop can be moved; this one is %(state)s.") % {"state": _state_words(desktop)},
            code="invalid_state",
        )
    source = _host(desktop)
    progress.step(operation, "choosing a host")
    target = _migration_target(operation, desktop)
    source_hv, target_hv = get_hypervisor(source.uri), get_hypervisor(target.uri)
    home_move = None
    try:
        progress.step(operation, f"preparing {target.name}")
        disk_path = _migration_disk(target, desktop)
        if disk_path != _disk_path(source_hv, source, desktop):
            raise StepFailed(
                gettext("%(name)s and %(name2)s keep disks at different paths; give their pools the same path.")
                % {"name": source.name, "name2": target.name},
                code="not_movable",
            )
        _upload_seed(target_hv, target, desktop, spec.seed_volume_name(desktop))
        interface = network.prepare_move(desktop, target)
        # The plugged-in home is one more disk the migration copies (desktops.services.homes owns the rules).
        home_move = homes.prepare_move(desktop, source=source, target=target)
        progress.step(operation, f"moving to {target.name}")
        stats = source_hv.migrate(
            desktop.domain_name,
            target.uri,
            migrate_address=urlsplit(target.uri).hostname or target.console_address,
            console_address=target.console_address,
            interfaces=[interface] if interface is not None else [],
            # The destination's QEMU opens the encrypted disk as it starts: the key exists there only meanwhile.
            secrets=disk_keys.secrets_for(desktop),
        )
    except BaseException:
        _undo_migration(desktop, source, target, home_move)
        raise
    Desktop.objects.filter(pk=desktop.pk).update(host_id=target.pk)
    disk_keys.key_moved(desktop, target)
    homes.finish_move(home_move, target=target)
    operation.params = {
        **operation.params,
        "from_host": source.name,
        "to_host": target.name,
        "downtime_ms": stats.downtime_ms,
        "elapsed_ms": stats.elapsed_ms,
    }
    Operation.objects.filter(pk=operation.pk).update(params=operation.params)
    network.finish_move(desktop)
    progress.step(operation, "removing the old disk")
    _remove_volumes(source_hv, source, desktop)
    homes.drop_source_copy(home_move, source=source)


def _migration_target(operation: Operation, desktop: Desktop) -> Host:
    """Claim room on the host named in the operation, or the scheduler's best other one that can hold the disk."""
    cannot_encrypt = disk_keys.hosts_without_encryption() if desktop.disk_encrypted else frozenset()
    wanted = operation.params.get("host_id")
    if wanted in cannot_encrypt:
        raise StepFailed(
            gettext("This desktop's disk is encrypted and that host cannot hold encrypted disks; pick another host."),
            code="not_movable",
        )
    placement = scheduling.relocate(
        scheduling.PlacementRequest(
            desktop_id=desktop.pk,
            vcpus=desktop.vcpus,
            memory_mib=desktop.memory_mib,
            image_id=desktop.template.image_id,
            exclude_host_ids=cannot_encrypt,
            **placement_needs(desktop.template),
        ),
        target_host_id=wanted,
    )
    return Host.objects.get(pk=placement.host_id)


def _migration_disk(target: Host, desktop: Desktop) -> str:
    """An empty overlay on the destination's copy of the image: only the desktop's own blocks cross the wire.

    The incremental copy writes into a disk of the same format, so an encrypted desktop gets a LUKS overlay
    there too, under its own key (a spare has a key of its own, so none is used).
    """
    capacity = (desktop.disk_gib or desktop.template.disk_gib) * GIB
    name = spec.disk_volume_name(desktop)
    if not desktop.disk_encrypted:
        return image_services.create_desktop_disk(
            host=target, image=desktop.template.image, volume_name=name, capacity_bytes=capacity
        )
    plan = image_services.desktop_disk_plan(host=target, image=desktop.template.image, capacity_bytes=capacity)
    key = disk_keys.disk_key_of(desktop)
    return image_services.create_encrypted_disk(
        host=target, plan=plan, volume_name=name, passphrase=disk_keys.passphrase_of(key)
    )


def _remove_volumes(hv, host: Host, desktop: Desktop) -> None:
    """Delete the desktop's disk and seed on one host (an encrypted disk is a file libvirt may not list)."""
    for volume in (spec.disk_volume_name(desktop), spec.seed_volume_name(desktop)):
        hv.volume_delete(host.storage_pool, volume)
    if desktop.disk_encrypted:
        hv.encrypted_file_delete(os.path.join(hv.pool_path(host.storage_pool), spec.disk_volume_name(desktop)))


def _undo_migration(desktop: Desktop, source: Host, target: Host, home_move) -> None:
    """A move that did not happen: the destination side goes, the claim returns; the guest runs on at the source."""
    target_hv = get_hypervisor(target.uri)
    try:
        arrived = _domain_exists(target_hv, desktop.domain_name)
    except HypervisorError:
        arrived = True  # cannot tell: deleting a disk a running guest may use is the one thing not to risk
    if arrived:
        log.error("desktop %s's move to %s failed late or cannot be checked; reconcile decides", desktop.pk, target)
        return
    steps = (
        ("network", lambda: network.undo_move(desktop)),
        ("claim", lambda: scheduling.return_to(desktop.pk, source.pk)),
        ("disk", lambda: _remove_volumes(target_hv, target, desktop)),
        ("home", lambda: homes.abandon_move(home_move, target=target)),
    )
    for what, step in steps:
        try:
            step()
        except Exception:  # the migration's own error is the one to report; reconcile tidies what is left
            log.exception("could not undo the %s part of desktop %s's move to %s", what, desktop.pk, target.name)


HANDLERS: dict[str, Callable[[Operation], None]] = {
    OperationKind.CREATE: do_create,
    OperationKind.START: do_start,
    OperationKind.RESTORE: do_start,
    OperationKind.STOP: do_stop,
    OperationKind.REBOOT: do_reboot,
    OperationKind.SUSPEND: do_suspend,
    OperationKind.RESUME: do_resume,
    OperationKind.HIBERNATE: do_hibernate,
    OperationKind.SNAPSHOT: do_snapshot,
    OperationKind.REVERT: do_revert,
    OperationKind.DELETE_SNAPSHOT: do_delete_snapshot,
    OperationKind.DELETE: do_delete,
    OperationKind.REBUILD: do_rebuild,
    OperationKind.MIGRATE: do_migrate,
    OperationKind.RESIZE: do_resize,
    OperationKind.ATTACH_HOME: do_attach_home,
}
