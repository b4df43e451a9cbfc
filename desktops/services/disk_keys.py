"""Data keys of desktop disks and tenant recordings: issue, claim spares, hand to libvirt, erase, rotate.

Every desktop disk on a host that supports it is a LUKS qcow2 overlay with its own random key (per
desktop, not per tenant), so deleting the desktop's key row erases that disk for good. Making a LUKS
header costs QEMU seconds of CPU whatever the iteration time (it calibrates its key derivation), so
each host keeps a few spares per template: empty encrypted overlays already on the template's base
and of its size, each with its own key, made in the background. A cold start renames one into
place, which costs less than libvirt's plain linked clone. A spare is never copied: clones of one
seed would share its LUKS master key, which would make per-desktop erasure a fiction (FINDINGS).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from desktops import dispatch
from desktops.choices import KeyPurpose
from desktops.models import DataKey, Desktop, DesktopTemplate, HomeDisk
from hosts.choices import CopyState, HostState
from hosts.hypervisor import HypervisorError, get_hypervisor
from hosts.models import Host, ImageCopy
from hosts.services import images as image_services
from hosts.services.images import DiskPlan
from quetzal import kek
from quetzal.errors import ServiceError
from tenants import events
from tenants.models import Tenant, User
from tenants.sso import services as sso

log = logging.getLogger(__name__)
GIB = 1024**3


class KeyErased(ServiceError):
    """The desktop's disk key is gone: its disk cannot be opened any more."""

    code = "disk_key_erased"
    status = 409


def new_key_row(**fields: object) -> tuple[DataKey, bytes]:
    """An unsaved key row holding a fresh data key wrapped under the current KEK, and the key."""
    data_key = kek.new_data_key()
    row = DataKey(uuid=uuid.uuid4(), **fields)
    row.wrapped, row.kek_id = kek.wrap(data_key, context=row.context)
    return row, data_key


def data_key_of(row: DataKey) -> bytes:
    """The unwrapped data key of a row (kept in memory only as long as the caller needs it)."""
    return kek.unwrap(row.wrapped, context=row.context, kek_id=row.kek_id)


def passphrase_of(row: DataKey) -> bytes:
    """The LUKS passphrase of a disk key row."""
    return kek.passphrase(data_key_of(row))


# --------------------------------------------------------------------------------- disks


def encrypts_disks(host: Host) -> bool:
    """Whether new desktop disks on host are LUKS overlays (libvirt's test driver keeps plain ones)."""
    return settings.DESKTOP_DISK_ENCRYPTION and get_hypervisor(host.uri).supports_disk_encryption


def claim_for(*, desktop: Desktop, host: Host, plan: DiskPlan) -> tuple[DataKey, str | None]:
    """The desktop's disk key and the spare overlay to rename into its disk (None: make one now).

    A retried provisioning finds the key it already claimed (and its spare, maybe already renamed).
    """
    with transaction.atomic():
        existing = DataKey.objects.filter(desktop=desktop).first()
        if existing is not None:
            return existing, existing.spare_path or None
        spare = (
            _spares(host, plan)
            .select_for_update(skip_locked=True)  # two starts never get one spare; neither waits
            .order_by("pk")
            .first()
        )
        dispatch.refill_disk_spares(host.pk)
        if spare is not None:
            DataKey.objects.filter(pk=spare.pk).update(desktop=desktop, tenant_id=desktop.tenant_id)
            spare.desktop, spare.tenant_id = desktop, desktop.tenant_id
            return spare, spare.spare_path
        row, _ = new_key_row(purpose=KeyPurpose.DISK, desktop=desktop, tenant_id=desktop.tenant_id, host=host)
        row.save()
        log.warning("no spare encrypted disk on %s: making one during the start (seconds)", host.name)
        return row, None


def _spares(host: Host, plan: DiskPlan) -> QuerySet[DataKey]:
    """The host's unclaimed spares made for this base and size."""
    return DataKey.objects.filter(
        host=host,
        purpose=KeyPurpose.DISK,
        desktop__isnull=True,
        spare_backing_path=plan.backing_path,
        spare_capacity_bytes=plan.capacity_bytes,
    )


def disk_made(row: DataKey) -> None:
    """The spare is now the desktop's disk: forget where it came from."""
    DataKey.objects.filter(pk=row.pk).update(spare_path="")


def hosts_without_encryption() -> frozenset[int]:
    """Hosts that cannot hold a LUKS overlay (no way to run qemu-img there): an encrypted desktop never moves there."""
    return frozenset(h.pk for h in Host.objects.all() if not get_hypervisor(h.uri).supports_disk_encryption)


def key_moved(desktop: Desktop, host: Host) -> None:
    """The desktop's disk now lives on host: its key row follows (it goes with the host it names)."""
    DataKey.objects.filter(desktop=desktop).update(host=host)


def disk_key_of(desktop: Desktop) -> DataKey:
    """The encrypted desktop's disk key; KeyErased once it was destroyed."""
    row = DataKey.objects.filter(desktop=desktop).first()
    if row is None:
        raise KeyErased(gettext("This desktop's disk key was destroyed; its disk can no longer be opened."))
    return row


def secrets_for(desktop: Desktop) -> dict[str, bytes]:
    """The libvirt secrets QEMU needs to open the desktop's disks (UUID -> passphrase); none if plain.

    With the key of the encrypted home plugged into it, if any: a hibernated desktop wakes, and a running one
    moves, with its home.
    """
    secrets = {}
    row = DataKey.objects.filter(desktop=desktop).first()
    if row is not None:
        secrets[str(row.uuid)] = passphrase_of(row)
    elif desktop.disk_encrypted:
        raise KeyErased(gettext("This desktop's disk key was destroyed; its disk can no longer be opened."))
    home_key = DataKey.objects.filter(purpose=KeyPurpose.HOME, home__attached_to=desktop).first()
    if home_key is not None:
        secrets[str(home_key.uuid)] = passphrase_of(home_key)
    return secrets


def erase_desktop_key(desktop: Desktop, *, why: str) -> bool:
    """Destroy the desktop's disk key (crypto-erase); True if there was one."""
    with transaction.atomic():
        deleted, _ = DataKey.objects.filter(desktop=desktop).delete()
        if deleted:
            events.disk_keys_erased(tenant=desktop.tenant, desktop_ids=[desktop.pk], why=why)
    return bool(deleted)


def erase_person_keys(user: User) -> int:
    """Destroy the disk keys of every desktop and home the person holds, in every tenant (their data goes too)."""
    with transaction.atomic():
        rows = list(DataKey.objects.filter(desktop__user=user).select_related("desktop__tenant"))
        homes = DataKey.objects.filter(purpose=KeyPurpose.HOME, home__user=user)
        home_rows = list(homes.select_related("home__tenant"))
        by_tenant: dict[Tenant, tuple[list[int], list[int]]] = {}
        for row in rows:
            assert row.desktop is not None
            by_tenant.setdefault(row.desktop.tenant, ([], []))[0].append(row.desktop_id or 0)
        for row in home_rows:
            assert row.home is not None
            by_tenant.setdefault(row.home.tenant, ([], []))[1].append(row.home_id or 0)
        DataKey.objects.filter(pk__in=[r.pk for r in (*rows, *home_rows)]).delete()
        for tenant, (desktop_ids, home_ids) in by_tenant.items():
            events.disk_keys_erased(tenant=tenant, desktop_ids=desktop_ids, home_ids=home_ids, why="person deleted")
    return len(rows) + len(home_rows)


# --------------------------------------------------------------------------------- homes


def home_key_for(home: HomeDisk) -> DataKey:
    """The home disk's key, made on its first use; a retried or concurrent creation gets the same one."""
    row = DataKey.objects.filter(home=home).first()
    if row is not None:
        return row
    fresh, _ = new_key_row(purpose=KeyPurpose.HOME, home=home, tenant_id=home.tenant_id)
    try:
        with transaction.atomic():
            fresh.save()
        return fresh
    except IntegrityError:
        return DataKey.objects.get(home=home)  # one-to-one: another worker made it first


def home_key_of(home: HomeDisk) -> DataKey:
    """The encrypted home's key; KeyErased once it was destroyed."""
    row = DataKey.objects.filter(home=home).first()
    if row is None:
        raise KeyErased(gettext("This home disk's key was destroyed; its files can no longer be read."))
    return row


# --------------------------------------------------------------------------------- spares


def _plans(host: Host) -> list[DiskPlan]:
    """The overlays the host's templates need: one per base and size whose image is copied there."""
    ready = ImageCopy.objects.filter(host=host, state=CopyState.READY).values_list("image_id", flat=True)
    plans: dict[tuple[str, int], DiskPlan] = {}
    for template in DesktopTemplate.objects.filter(image_id__in=list(ready)).select_related("image"):
        # Spares come in the template's default size; a desktop launched at another size makes its disk then.
        plan = image_services.desktop_disk_plan(host=host, image=template.image, capacity_bytes=template.disk_gib * GIB)
        plans.setdefault((plan.backing_path, plan.capacity_bytes), plan)
    return list(plans.values())


def refill_spares(*, host_ids: Iterable[int] | None = None) -> int:
    """Keep DESKTOP_DISK_SPARES spares per template base and size on each up host; returns how many were made."""
    hosts = Host.objects.filter(state=HostState.UP)
    if host_ids is not None:
        hosts = hosts.filter(pk__in=list(host_ids))
    made = 0
    for host in hosts:
        try:
            if not encrypts_disks(host):
                continue
            plans = _plans(host)
            _drop_stale_spares(host, plans)
            for plan in plans:
                for _ in range(max(0, settings.DESKTOP_DISK_SPARES - _spares(host, plan).count())):
                    make_spare(host, plan)
                    made += 1
        except HypervisorError as error:
            log.warning("could not make spare disks on %s: %s", host.name, error)
    return made


def make_spare(host: Host, plan: DiskPlan) -> DataKey:
    """One spare: the file first, then its row, so a row never points at a disk that is not there."""
    row, data_key = new_key_row(
        purpose=KeyPurpose.DISK,
        host=host,
        spare_backing_path=plan.backing_path,
        spare_capacity_bytes=plan.capacity_bytes,
    )
    name = f"quetzal-spare-{row.uuid.hex}.qcow2"
    row.spare_path = image_services.create_encrypted_disk(
        host=host, plan=plan, volume_name=name, passphrase=kek.passphrase(data_key)
    )
    row.save()
    return row


def _drop_stale_spares(host: Host, plans: list[DiskPlan]) -> None:
    """Delete spares no template needs any more (their base or size changed), file and row."""
    wanted = {(p.backing_path, p.capacity_bytes) for p in plans}
    hv = get_hypervisor(host.uri)
    for spare in DataKey.objects.filter(host=host, purpose=KeyPurpose.DISK, desktop__isnull=True):
        if (spare.spare_backing_path, spare.spare_capacity_bytes) not in wanted:
            hv.encrypted_file_delete(spare.spare_path)
            spare.delete()


# --------------------------------------------------------------------------------- recordings


def tenant_recording_key(tenant: Tenant) -> bytes:
    """The tenant's recording key, made on first use (one per tenant, erased with the tenant)."""
    row = DataKey.objects.filter(tenant=tenant, purpose=KeyPurpose.RECORDING).first()
    if row is None:
        fresh, _ = new_key_row(purpose=KeyPurpose.RECORDING, tenant=tenant)
        try:
            with transaction.atomic():
                fresh.save()
            row = fresh
        except IntegrityError:
            # Two sessions made one at once: the unique constraint kept the first; use it.
            row = DataKey.objects.get(tenant=tenant, purpose=KeyPurpose.RECORDING)
    return data_key_of(row)


# --------------------------------------------------------------------------------- rotation


def rotate_kek(*, old: kek.Kek, new: kek.Kek) -> int:
    """Re-wrap every data key under `new` in one transaction (disks untouched); returns how many changed.

    Rows already under `new` are left as they are, so an interrupted or repeated rotation is safe.
    """
    with transaction.atomic():
        rows = list(DataKey.objects.select_for_update().exclude(kek_id=new.kek_id).order_by("pk"))
        now = timezone.now()
        for row in rows:
            data_key = kek.unwrap(row.wrapped, context=row.context, kek_id=row.kek_id, keks=[old])
            row.wrapped, row.kek_id = kek.wrap(data_key, context=row.context, kek=new)
            row.rewrapped_at = now
        DataKey.objects.bulk_update(rows, ["wrapped", "kek_id", "rewrapped_at"], batch_size=500)
        # Identity providers' client secrets are sealed under the same KEK: they move with the data keys.
        count = len(rows) + sso.rewrap_secrets(old=old, new=new)
        events.keys_rotated(old_kek_id=old.kek_id, new_kek_id=new.kek_id, count=count)
    return count
