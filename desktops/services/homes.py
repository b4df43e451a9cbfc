"""Home disks: made on first use, attached to one desktop at a time, detached when it stops or is recycled.

The one-to-one `HomeDisk.attached_to` is the rule "at most one desktop", kept by guarded UPDATEs here (as
desktops.state does for desktop states): of two desktops racing for a home, exactly one UPDATE wins, and the
database refuses any write that would give a desktop two homes or a home two desktops. The hypervisor calls
(volume, hot-plug) run in workers only; the web tier creates rows and asks workers.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext

from desktops.choices import DesktopState, HomeDiskState, OsFamily
from desktops.models import Desktop, HomeDisk
from desktops.services import disk_keys, quotas
from hosts.homefs import HomeFsError, image, luks
from hosts.hypervisor import DiskSpec, HypervisorError, NotSupported, get_hypervisor
from hosts.hypervisor.host_shell import shell_for
from hosts.models import Host
from quetzal.errors import LimitExceeded, NotFound, ServiceError
from tenants import events
from tenants.models import Tenant, User

log = logging.getLogger(__name__)


class HomeUnreachable(ServiceError):
    """This worker cannot see the volume's file (libvirt's test driver, or no worker on the disk's host)."""

    code = "home_unreachable"
    status = 409


# The guest finds the home by its serial, so the target name only has to be free in the domain.
HOME_TARGET_DEV = "vdh"
# A desktop holds its home while its VM exists with the disk plugged in (a hibernated one keeps it in the
# saved memory); in any other state the claim is stale and the next attach may take the home over.
HOLDING_STATES = (
    DesktopState.STARTING,
    DesktopState.RUNNING,
    DesktopState.STOPPING,
    DesktopState.SUSPENDED,
    DesktopState.HIBERNATED,
)


def volume_name(*, tenant: Tenant, user: User) -> str:
    """Free of user text, and never a name used before: the row keeps it, so it need not be derivable.

    Ids alone repeat on a shared host (another installation, a database restored or rebuilt), and a volume found
    under the name is taken as this home's own: a random part keeps anyone from getting another's old files.
    """
    return f"qz-home-t{tenant.pk}-u{user.pk}-{secrets.token_hex(4)}.img"


def home_of(*, tenant: Tenant, user: User) -> HomeDisk | None:
    return HomeDisk.objects.for_tenant(tenant).filter(user=user).select_related("host", "attached_to").first()


def _default_host() -> Host:
    host = Host.objects.filter(enabled=True).order_by("pk").first()
    if host is None:
        raise ServiceError(gettext("No host is available to keep your files yet."), code="no_host", status=409)
    return host


def home_host_id(desktop: Desktop) -> int | None:
    """The host keeping the desktop's person's home, for placement to prefer."""
    if desktop.user_id is None:
        return None
    return (
        HomeDisk.objects.filter(tenant_id=desktop.tenant_id, user_id=desktop.user_id)
        .values_list("host_id", flat=True)
        .first()
    )


def used_gib(tenant: Tenant) -> int:
    """What the tenant's home disks promise, in GiB (their sizes, not what is written in them)."""
    return HomeDisk.objects.for_tenant(tenant).aggregate(total=Sum("size_gib"))["total"] or 0


def ensure_home(*, tenant: Tenant, user: User, host: Host | None = None, actor=None) -> HomeDisk:
    """The person's home disk row, created (under the tenant's lock, within its home quota) on first use.

    The volume itself is made by `create_home_volume` on a worker of its host.
    """
    existing = home_of(tenant=tenant, user=user)
    if existing is not None:
        return existing
    with transaction.atomic():
        locked = quotas.lock(tenant)
        existing = home_of(tenant=tenant, user=user)
        if existing is not None:
            return existing
        size = locked.home_disk_gib
        if locked.quota_home_gib and used_gib(locked) + size > locked.quota_home_gib:
            raise LimitExceeded(
                gettext("Your organisation's %(quota_home_gib)s GiB for home folders is used up; ask an admin.")
                % {"quota_home_gib": locked.quota_home_gib},
                code="quota_home",
            )
        home = HomeDisk.objects.create(
            tenant=locked,
            user=user,
            host=host or _default_host(),
            size_gib=size,
            volume_name=volume_name(tenant=locked, user=user),
        )
        events.home_created(actor=actor or user, home=home)
    return home


def create_home_volume(home: HomeDisk) -> HomeDisk:
    """Make the volume on the home's host and put an empty ext4 in it; repeating it is harmless.

    The one place a home disk comes to exist on a host. Where desktop disks are encrypted the home is too: a
    LUKS qcow2 with a key of its own (disk_keys.home_key_for), whose decrypted view gets the filesystem.
    Runs on a worker of that host: mkfs.ext4 writes the pool's file directly.
    """
    if home.state == HomeDiskState.READY and home.volume_path:
        return home
    host = home.host
    hv = get_hypervisor(host.uri)
    try:
        if not home.encrypted and disk_keys.encrypts_disks(host):
            # Decided once, before any file: a retry after a crash continues the same way. Nothing was written
            # into a home that never became ready, so a plain one a crash left behind can go.
            hv.volume_delete(host.storage_pool, home.volume_name)
            name = encrypted_volume_name(home)
            HomeDisk.objects.filter(pk=home.pk).update(encrypted=True, volume_name=name)
            home.encrypted, home.volume_name = True, name
        path = _make_encrypted(home, hv) if home.encrypted else _make_plain(home, hv)
    except (HypervisorError, HomeFsError) as error:
        reason = getattr(error, "detail", str(error))
        HomeDisk.objects.filter(pk=home.pk).update(state=HomeDiskState.ERROR, status_reason=reason[:300])
        raise ServiceError(
            gettext("Your home disk could not be created: %(reason)s") % {"reason": reason}, code="home_create_failed"
        ) from error
    HomeDisk.objects.filter(pk=home.pk).update(state=HomeDiskState.READY, volume_path=path, status_reason="")
    home.refresh_from_db()
    return home


def encrypted_volume_name(home: HomeDisk) -> str:
    return home.volume_name.removesuffix(".img") + ".qcow2"


def _unreachable(home: HomeDisk, path: str) -> HomeUnreachable:
    """The home's file lives on another machine than this worker's: recorded on the home, for the caller to raise."""
    reason = f"Host {home.host.name} keeps {path} where this worker cannot see it (a worker must run there)."
    HomeDisk.objects.filter(pk=home.pk).update(state=HomeDiskState.ERROR, status_reason=reason[:300])
    return HomeUnreachable(reason)


def _make_plain(home: HomeDisk, hv) -> str:
    host = home.host
    if hv.volume_exists(host.storage_pool, home.volume_name):
        path = hv.volume_path(host.storage_pool, home.volume_name)
    else:
        path = hv.volume_create(host.storage_pool, home.volume_name, home.size_bytes, fmt="raw")
    if not os.path.exists(path):
        raise _unreachable(home, path)
    try:
        image.ImageFiles(path).usage()  # already an ext4: a retry after a crash past mkfs
    except HomeFsError:
        image.format_image(path)
    return path


def _make_encrypted(home: HomeDisk, hv) -> str:
    """The LUKS qcow2 (made under a temporary name, so a crash never leaves a half header under the real one)."""
    shell = shell_for(home.host.uri)
    if shell is None or not shell.is_local:
        # qemu-img and the filesystem tools run here, on this worker's own disk: for another machine's pool that
        # would make the file on the wrong machine (the host's desktop would then find no home there).
        raise _unreachable(home, f"{home.host.storage_pool}/{home.volume_name}")
    path = os.path.join(hv.pool_path(home.host.storage_pool), home.volume_name)
    passphrase = disk_keys.passphrase_of(disk_keys.home_key_for(home))
    if not os.path.exists(path):
        partial = f"{path}.part"
        luks.create(partial, passphrase, home.size_bytes)
        os.replace(partial, path)
    with luks.opened(path, passphrase) as view:
        try:
            image.ImageFiles(view, check_lock=False).usage()
        except HomeFsError:
            image.format_image(view)
    return path


def delete_home_volume(home: HomeDisk) -> None:
    """Remove the home's file from its host (worker side); missing is success. Its key goes with its row."""
    hv = get_hypervisor(home.host.uri)
    if home.encrypted:
        hv.encrypted_file_delete(
            home.volume_path or os.path.join(hv.pool_path(home.host.storage_pool), home.volume_name)
        )
    else:
        hv.volume_delete(home.host.storage_pool, home.volume_name)


# --- the attach-once rule -------------------------------------------------------------------


def claim(home: HomeDisk, desktop: Desktop) -> bool:
    """Mark the home attached to `desktop` if it is free (or held by a desktop that no longer runs); won?

    The home's row is locked while the holder is looked at, so of racing claims exactly one sees it free (a
    conditional UPDATE alone would judge the holder from a snapshot taken before the winner committed).
    """
    try:
        with transaction.atomic():
            row = HomeDisk.objects.select_for_update().filter(pk=home.pk, state=HomeDiskState.READY).first()
            if row is None:
                return False
            holder = Desktop.objects.filter(home_disk__pk=row.pk).values_list("state", flat=True).first()
            if row.attached_to_id not in (None, desktop.pk) and holder in HOLDING_STATES:
                return False
            HomeDisk.objects.filter(pk=row.pk).update(attached_to=desktop, attached_at=timezone.now())
    except IntegrityError:
        return False  # the desktop holds another home already (one-to-one)
    home.attached_to, home.attached_to_id = desktop, desktop.pk
    return True


def release(*, desktop: Desktop) -> bool:
    """The desktop no longer holds a home (it stopped or is gone); whether it held one."""
    return HomeDisk.objects.filter(attached_to=desktop).update(attached_to=None, attached_at=None) == 1


def wants_home(desktop: Desktop) -> bool:
    """Desktops of a person on a Linux template (ext4 homes) get one; Windows homes are not built yet."""
    return desktop.user_id is not None and desktop.template.os_family == OsFamily.LINUX


def attach(desktop: Desktop) -> str:
    """Plug the person's home into their running desktop (worker side); "" or why it runs without it.

    Never fails the desktop: without its home it still runs, and the note (its status) says why.
    """
    desktop = Desktop.objects.select_related("tenant", "template", "user", "host").get(pk=desktop.pk)
    if not wants_home(desktop) or desktop.host is None:
        return ""
    assert desktop.user is not None
    try:
        home = ensure_home(tenant=desktop.tenant, user=desktop.user, host=desktop.host)
        if home.host_id != desktop.host_id:
            # Moving a home between hosts (volume streams) is not built yet: say so instead of guessing.
            return f"Your home folder is kept on host {home.host.name}; this desktop runs without it."
        home = create_home_volume(home)
    except HomeUnreachable as error:
        log.info("home for desktop %s not attached: %s", desktop.pk, error.detail)
        return ""
    except ServiceError as error:
        log.warning("home for desktop %s unavailable: %s", desktop.pk, error.detail)
        return f"Your home folder is unavailable: {error.detail}"
    if not claim(home, desktop):
        other = Desktop.objects.filter(home_disk__pk=home.pk).first()
        where = f"on {other.name}" if other is not None else "on another desktop"
        return f"Your home folder is open {where}; this desktop runs without it."
    try:
        disk, secrets = _disk_of(home)
        get_hypervisor(desktop.host.uri).attach_disk(desktop.domain_name, disk, secrets=secrets)
    except disk_keys.KeyErased as error:
        release(desktop=desktop)
        return f"Your home folder is unavailable: {error.detail}"
    except NotSupported:
        # libvirt's test driver cannot hot-plug; every libvirtd can. The desktop runs without a home.
        release(desktop=desktop)
        return ""
    except HypervisorError as error:
        release(desktop=desktop)
        return f"Your home folder could not be attached: {error}"
    return ""


def _disk_of(home: HomeDisk) -> tuple[DiskSpec, dict[str, bytes]]:
    """The home as the domain's disk, and the secret QEMU opens it with (none for a plain one)."""
    if not home.encrypted:
        disk = DiskSpec(
            path=home.volume_path, target_dev=HOME_TARGET_DEV, bus="virtio", driver_type="raw", serial=home.serial
        )
        return disk, {}
    key = disk_keys.home_key_of(home)
    disk = DiskSpec(
        path=home.volume_path,
        target_dev=HOME_TARGET_DEV,
        bus="virtio",
        driver_type="qcow2",
        serial=home.serial,
        encryption_secret_uuid=str(key.uuid),
    )
    return disk, {str(key.uuid): disk_keys.passphrase_of(key)}


def detach(desktop: Desktop, *, unplug: bool) -> bool:
    """Let go of the desktop's home (worker side): unplug it from the VM first when it keeps running."""
    home = HomeDisk.objects.filter(attached_to=desktop).select_related("host").first()
    if home is None:
        return False
    if unplug and desktop.host_id is not None:
        host = Host.objects.get(pk=desktop.host_id)
        try:
            if not get_hypervisor(host.uri).detach_disk(desktop.domain_name, home.serial):
                # The guest did not let go: keep the claim rather than let the host write under it.
                raise ServiceError(
                    gettext("The desktop did not release the home folder."), code="home_busy", status=409
                )
        except NotSupported:
            pass
    return release(desktop=desktop)


def home_for_files(*, tenant: Tenant, user: User) -> HomeDisk:
    """The home the file manager opens (created on first visit); NotFound for someone outside the tenant."""
    if not tenant.memberships.filter(user=user).exists():
        raise NotFound(gettext("No such person in your organisation."))
    return ensure_home(tenant=tenant, user=user)


# --- live migration: the home goes where its desktop goes ------------------------------------


@dataclass(frozen=True)
class HomeMove:
    """The home plugged into a desktop being moved, and the empty volume made for it on the destination."""

    home_id: int
    volume_name: str
    path: str


def prepare_move(desktop: Desktop, *, source: Host, target: Host) -> HomeMove | None:
    """Make an empty volume for the desktop's plugged-in home on the target, where the migration copies it.

    None when no home is plugged in. The migration mirrors every disk of the running domain over NBD, the
    home too, into a file of the same path on the target. A file of that name already there is refused, not
    reused or replaced: it is a crashed move's leftover, or the very same file on storage both hosts share.
    """
    home = HomeDisk.objects.filter(attached_to=desktop, host=source).first()
    if home is None:
        return None
    if home.encrypted:
        # The target needs a LUKS file of its own and the key as a secret during the move: built with the
        # encrypted move of the desktop's own disk, not here.
        raise ServiceError(
            gettext("Desktops with an encrypted home folder cannot be moved to another host yet."), code="not_movable"
        )
    hv = get_hypervisor(target.uri)
    if hv.volume_exists(target.storage_pool, home.volume_name):
        raise ServiceError(
            gettext(
                "%(name)s already has a file named %(volume_name)s (left by a move that failed?); "
                "remove it there or choose another host."
            )
            % {"name": target.name, "volume_name": home.volume_name},
            code="not_movable",
        )
    path = hv.volume_create(target.storage_pool, home.volume_name, home.size_bytes, fmt="raw")
    if path != home.volume_path:
        hv.volume_delete(target.storage_pool, home.volume_name)
        raise ServiceError(
            gettext("%(name)s and %(name2)s keep disks at different paths; give their pools the same path.")
            % {"name": source.name, "name2": target.name},
            code="not_movable",
        )
    return HomeMove(home_id=home.pk, volume_name=home.volume_name, path=path)


def finish_move(move: HomeMove | None, *, target: Host) -> None:
    """The desktop runs on the target with its home: the home's row follows at once (the source copy is stale)."""
    if move is not None:
        HomeDisk.objects.filter(pk=move.home_id).update(host=target, volume_path=move.path)


def drop_source_copy(move: HomeMove | None, *, source: Host) -> None:
    """After a move, the source's copy of the home is stale: remove it, as the desktop's old disk is."""
    if move is not None:
        get_hypervisor(source.uri).volume_delete(source.storage_pool, move.volume_name)


def abandon_move(move: HomeMove | None, *, target: Host) -> None:
    """The move failed: the desktop and its home stay on the source; drop the target's empty copy."""
    if move is not None:
        get_hypervisor(target.uri).volume_delete(target.storage_pool, move.volume_name)
