"""Images: import and checksum, copy to hosts over libvirt streams, and clone desktop disks."""

from __future__ import annotations

import logging
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from hosts import conf, dispatch
from hosts.checksums import CHUNK, sha256_chunks, sha256_file
from hosts.choices import CopyState, ImageFormat
from hosts.errors import (
    ChecksumMismatch,
    ImageCopyFailed,
    ImageExists,
    ImageNotReady,
    InvalidImage,
)
from hosts.hypervisor import AlreadyExists, HostUnavailable, HypervisorError, VolumeNotFound, get_hypervisor
from hosts.models import Host, Image, ImageCopy
from quetzal.errors import Conflict
from tenants import events

log = logging.getLogger(__name__)

QCOW2_MAGIC = b"QFI\xfb"
UPLOAD_DIR = "images"


def _normalise_checksum(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip().lower().removeprefix("sha256:")
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidImage(gettext("The expected checksum must be 64 hexadecimal digits (SHA-256)."))
    return value


def inspect_disk(path: Path, fmt: str) -> tuple[int, int]:
    """(file size, virtual size) after checking the file is the format claimed and stands alone."""
    if fmt not in ImageFormat.values:
        raise InvalidImage(f"Unknown image format {fmt!r}: use qcow2 or raw.")
    if not path.is_file():
        raise InvalidImage(gettext("%(path)s is not a file.") % {"path": path})
    size = path.stat().st_size
    if size == 0:
        raise InvalidImage(gettext("%(path)s is empty.") % {"path": path})
    with path.open("rb") as handle:
        header = handle.read(32)
    is_qcow2 = header[:4] == QCOW2_MAGIC
    if fmt == ImageFormat.RAW:
        if is_qcow2:
            # Booting a qcow2 file as raw would show the guest the container, not the disk.
            raise InvalidImage(gettext("%(name)s is a qcow2 file; import it as qcow2.") % {"name": path.name})
        return size, size
    if not is_qcow2 or len(header) < 32:
        raise InvalidImage(gettext("%(name)s is not a qcow2 file.") % {"name": path.name})
    backing_offset, _backing_len = struct.unpack(">QI", header[8:20])
    if backing_offset:
        # A base image must stand alone: a backing file path would not exist on the hosts.
        raise InvalidImage(
            gettext("%(name)s has a backing file; flatten it (qemu-img convert) first.") % {"name": path.name}
        )
    (virtual_size,) = struct.unpack(">Q", header[24:32])
    return size, virtual_size


def _check_boot_files(kernel: str | os.PathLike | None, initrd: str | os.PathLike | None) -> tuple[str, str]:
    if initrd and not kernel:
        raise InvalidImage(gettext("An initrd needs a kernel."))
    paths = []
    for label, value in (("kernel", kernel), ("initrd", initrd)):
        if not value:
            paths.append("")
            continue
        path = Path(value).resolve()
        if not path.is_file():
            raise InvalidImage(gettext("The %(label)s %(path)s is not a file.") % {"label": label, "path": path})
        paths.append(str(path))
    return paths[0], paths[1]


def _existing_same(name: str, sha256: str) -> Image | None:
    """An image of that name, if it has the same content (import is then a no-op)."""
    image = Image.objects.filter(name=name).first()
    if image is None:
        return None
    if image.sha256 != sha256:
        raise ImageExists(f"An image named {name!r} with different content exists; choose another name.")
    return image


def _check_ready_line(line: str) -> str:
    """A readiness line is one short printable token the guest writes at the start of a serial line."""
    line = line.strip()
    if len(line) > 64 or not all(ch.isprintable() and not ch.isspace() for ch in line):
        raise InvalidImage(gettext("A readiness line is at most 64 printable characters without spaces."))
    return line


def import_image(
    path: str | os.PathLike,
    name: str,
    fmt: str,
    expected_sha256: str | None = None,
    kernel: str | os.PathLike | None = None,
    initrd: str | os.PathLike | None = None,
    cmdline: str = "",
    *,
    description: str = "",
    ready_line: str = "",
    actor=None,
) -> Image:
    """Register a local disk file in place after checking its format and checksum."""
    name = name.strip()
    if not name:
        raise InvalidImage(gettext("An image needs a name."))
    ready_line = _check_ready_line(ready_line)
    source = Path(path).resolve()
    expected = _normalise_checksum(expected_sha256)
    size, virtual_size = inspect_disk(source, fmt)
    kernel_path, initrd_path = _check_boot_files(kernel, initrd)
    sha256 = sha256_file(source)
    if expected is not None and sha256 != expected:
        raise ChecksumMismatch(
            gettext("%(name)s has SHA-256 %(sha256)s, not the expected %(expected)s.")
            % {"name": source.name, "sha256": sha256, "expected": expected}
        )
    existing = _existing_same(name, sha256)
    if existing is not None:
        if ready_line and existing.ready_line != ready_line:
            # The same bytes imported by an older Quetzal, which did not know how the guest says "ready".
            Image.objects.filter(pk=existing.pk).update(ready_line=ready_line)
            existing.ready_line = ready_line
        return existing
    with transaction.atomic():
        image = Image.objects.create(
            name=name,
            format=fmt,
            source_path=str(source),
            size_bytes=size,
            virtual_size_bytes=virtual_size,
            sha256=sha256,
            kernel_path=kernel_path,
            initrd_path=initrd_path,
            cmdline=cmdline,
            description=description,
            ready_line=ready_line,
        )
        events.image_imported(actor=actor, image=image, path=str(source), sha256=sha256)
    return image


def import_uploaded_image(
    *,
    upload: File,
    name: str,
    fmt: str,
    expected_sha256: str | None = None,
    kernel: str | None = None,
    initrd: str | None = None,
    cmdline: str = "",
    description: str = "",
    actor=None,
) -> Image:
    """Store an uploaded disk under MEDIA_ROOT/images/, checksumming while writing; nothing kept on error."""
    name = name.strip()
    if not name:
        raise InvalidImage(gettext("An image needs a name."))
    expected = _normalise_checksum(expected_sha256)
    kernel_path, initrd_path = _check_boot_files(kernel, initrd)
    directory = Path(default_storage.path(UPLOAD_DIR))
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:

            def written() -> Iterator[bytes]:
                for chunk in upload.chunks(CHUNK):
                    handle.write(chunk)
                    yield chunk

            sha256, _ = sha256_chunks(written())
        if expected is not None and sha256 != expected:
            raise ChecksumMismatch(
                gettext("The upload has SHA-256 %(sha256)s, not the expected %(expected)s.")
                % {"sha256": sha256, "expected": expected}
            )
        size, virtual_size = inspect_disk(tmp, fmt)
        existing = _existing_same(name, sha256)
        if existing is not None:
            return existing
        stored = default_storage.get_available_name(f"{UPLOAD_DIR}/{Path(upload.name or name).name}")
        os.replace(tmp, default_storage.path(stored))
    finally:
        tmp.unlink(missing_ok=True)
    try:
        with transaction.atomic():
            image = Image(
                name=name,
                format=fmt,
                size_bytes=size,
                virtual_size_bytes=virtual_size,
                sha256=sha256,
                kernel_path=kernel_path,
                initrd_path=initrd_path,
                cmdline=cmdline,
                description=description,
            )
            image.file.name = stored
            image.save()
            events.image_uploaded(actor=actor, image=image, file=stored, sha256=sha256)
    except Exception:
        default_storage.delete(stored)
        raise
    return image


# ------------------------------------------------------------------------------- copies to hosts


def volume_names(image: Image) -> tuple[str, str, str]:
    """Names of the disk, kernel and initrd volumes of an image in a host's pool."""
    stem = f"quetzal-image-{image.pk}-{image.sha256[:12]}"
    return f"{stem}.{image.format}", f"{stem}-vmlinuz", f"{stem}-initrd.img"


def request_copies(*, image: Image, hosts: Iterable[Host], actor=None) -> list[ImageCopy]:
    """Mark copies of image to hosts pending and queue them (after commit); ready ones are left alone."""
    copies = []
    with transaction.atomic():
        for host in hosts:
            copy, _ = ImageCopy.objects.get_or_create(image=image, host=host)
            ImageCopy.objects.filter(pk=copy.pk, state=CopyState.FAILED).update(state=CopyState.PENDING)
            copy.refresh_from_db()
            copies.append(copy)
            if copy.state == CopyState.PENDING:
                # With the broker down the copy stays pending and the action can be repeated.
                dispatch.on_commit(dispatch.COPY_IMAGE_TO_HOST, image.pk, host.pk)
        events.image_copy_requested(actor=actor, image=image, host_ids=[c.host_id for c in copies])
    return copies


def copy_image_to_host(*, image: Image, host: Host, actor=None) -> ImageCopy:
    """Upload the image (and its kernel and initrd) into the host's pool through libvirt streams."""
    copy, _ = ImageCopy.objects.get_or_create(image=image, host=host)
    started = timezone.now()
    stale = started - timedelta(seconds=conf.image_copy_stale_after_s())
    claimable = Q(state__in=[CopyState.PENDING, CopyState.FAILED]) | Q(state=CopyState.COPYING, started_at__lt=stale)
    won = (
        ImageCopy.objects.filter(pk=copy.pk)
        .filter(claimable)
        .update(state=CopyState.COPYING, started_at=started, finished_at=None, error="", pool=host.storage_pool)
    )
    copy.refresh_from_db()
    if not won:
        if copy.state == CopyState.READY:
            return copy
        raise Conflict(
            gettext("%(image)s is already being copied to %(host)s.") % {"image": image, "host": host},
            code="copy_in_progress",
        )
    # Only the worker that started this attempt may finish it (a stale one may have been taken over).
    mine = ImageCopy.objects.filter(pk=copy.pk, state=CopyState.COPYING, started_at=started)
    disk_name, kernel_name, initrd_name = volume_names(image)
    jobs = [(disk_name, image.local_path, image.format)]
    if image.kernel_path:
        jobs.append((kernel_name, Path(image.kernel_path), "raw"))
    if image.initrd_path:
        jobs.append((initrd_name, Path(image.initrd_path), "raw"))
    hypervisor = get_hypervisor(host.uri)
    paths: dict[str, str] = {}
    try:
        for volume, source, fmt in jobs:
            if not source.is_file():
                raise InvalidImage(gettext("%(source)s is missing on this machine.") % {"source": source})
            # Leftovers of an interrupted attempt; no desktop can use a copy that never got ready.
            hypervisor.volume_delete(host.storage_pool, volume)
            paths[volume] = hypervisor.volume_upload(host.storage_pool, volume, str(source), fmt)
    except (HypervisorError, InvalidImage) as exc:
        message = getattr(exc, "detail", None) or str(exc)
        for volume in paths:
            try:
                hypervisor.volume_delete(host.storage_pool, volume)
            except HypervisorError:
                log.warning("could not remove partial volume %s on %s", volume, host)
        mine.update(state=CopyState.FAILED, error=message[:2000], finished_at=timezone.now())
        if isinstance(exc, InvalidImage):
            raise
        if isinstance(exc, HostUnavailable):
            raise HostUnavailable(
                gettext("%(host)s did not answer while copying %(image)s: %(message)s")
                % {"host": host, "image": image, "message": message}
            ) from exc
        raise ImageCopyFailed(
            gettext("Copying %(image)s to %(host)s failed: %(message)s")
            % {"image": image, "host": host, "message": message}
        ) from exc
    with transaction.atomic():
        finished = mine.update(
            state=CopyState.READY,
            volume_name=disk_name,
            volume_path=paths[disk_name],
            kernel_volume=kernel_name if kernel_name in paths else "",
            kernel_path=paths.get(kernel_name, ""),
            initrd_volume=initrd_name if initrd_name in paths else "",
            initrd_path=paths.get(initrd_name, ""),
            finished_at=timezone.now(),
        )
        if finished:
            events.image_copied(actor=actor, image=image, host=host, volume=disk_name)
    copy.refresh_from_db()
    return copy


@dataclass(frozen=True)
class DiskPlan:
    """Where and how big a desktop's overlay on an image's copy is."""

    pool: str
    backing_path: str
    backing_format: str
    capacity_bytes: int


def _ready_copy(host: Host, image: Image) -> ImageCopy:
    copy = ImageCopy.objects.filter(image=image, host=host, state=CopyState.READY).first()
    if copy is None:
        raise ImageNotReady(gettext("%(image)s is not copied to %(host)s yet.") % {"image": image, "host": host})
    return copy


def desktop_disk_plan(*, host: Host, image: Image, capacity_bytes: int) -> DiskPlan:
    """The overlay a desktop of this image gets on host; ImageNotReady before the copy is there."""
    copy = _ready_copy(host, image)
    return DiskPlan(
        pool=copy.pool or host.storage_pool,
        backing_path=copy.volume_path,
        backing_format=image.format,
        # Never smaller than the image: a smaller overlay would cut the guest's filesystem short.
        capacity_bytes=max(int(capacity_bytes), image.virtual_size_bytes),
    )


def create_encrypted_disk(*, host: Host, plan: DiskPlan, volume_name: str, passphrase: bytes) -> str:
    """A new LUKS overlay as planned (a spare, or a desktop's disk when no spare was ready); seconds of CPU."""
    return get_hypervisor(host.uri).encrypted_disk_create(
        plan.pool,
        volume_name,
        passphrase,
        backing_path=plan.backing_path,
        backing_format=plan.backing_format,
        capacity_bytes=plan.capacity_bytes,
    )


def create_encrypted_desktop_disk(
    *, host: Host, plan: DiskPlan, volume_name: str, spare_path: str | None, passphrase: bytes
) -> str:
    """The desktop's LUKS overlay: its spare renamed (fast), or made now (slow); returns its path."""
    hypervisor = get_hypervisor(host.uri)
    if spare_path:
        try:
            return hypervisor.encrypted_disk_from_spare(plan.pool, volume_name, spare_path)
        except VolumeNotFound:
            log.warning("spare disk %s on %s is gone; making the disk now", spare_path, host.name)
    return create_encrypted_disk(host=host, plan=plan, volume_name=volume_name, passphrase=passphrase)


def create_desktop_disk(*, host: Host, image: Image, volume_name: str, capacity_bytes: int) -> str:
    """A qcow2 linked clone of the image's copy on host; returns its path (an existing one is reused)."""
    plan = desktop_disk_plan(host=host, image=image, capacity_bytes=capacity_bytes)
    pool, capacity, copy_path = plan.pool, plan.capacity_bytes, plan.backing_path
    hypervisor = get_hypervisor(host.uri)
    try:
        return hypervisor.volume_create_linked_clone(
            pool, volume_name, copy_path, backing_format=image.format, capacity_bytes=capacity
        )
    except AlreadyExists:
        # A retried task after a crash between the clone and recording it: the clone is done.
        return hypervisor.volume_path(pool, volume_name)
