"""The file manager: a person's home, through the guest agent while it is attached to a running desktop, and
from the host side (debugfs on the image, or on the decrypted view of an encrypted one) while it is not. Never
both: the route is decided on the worker under the home's row lock, which the attach (homes.claim) waits for.

The web side validates, checks who may see which home, spools upload chunks and streams staged downloads;
every byte inside the home is moved by a worker of the home's host (`dispatch.files_call`).
"""

from __future__ import annotations

import os
import re
import secrets
import zipfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.utils.translation import gettext

from desktops import dispatch
from desktops.choices import DesktopState, HomeDiskState
from desktops.models import Desktop, HomeDisk, HomeUpload
from desktops.services import disk_keys, homes
from hosts.homefs import HomeFiles, HomeFsError, HomePath, InvalidPath, clean_path, luks
from hosts.homefs.agent import AgentFiles
from hosts.homefs.image import ImageFiles
from hosts.hypervisor import get_hypervisor
from quetzal.errors import Conflict, LimitExceeded, NotFound, ServiceError
from tenants import events
from tenants.models import Tenant, User

# One PUT carries at most this much; the browser sends 4 MiB pieces, so a broken link costs one piece.
MAX_CHUNK_BYTES = 8 * 1024 * 1024
_COPY = 1024 * 1024
_SPOOL_NAME = re.compile(r"^(up|down)-[0-9a-f]{16,32}$")
_STATUS = {"exists": 409, "file_not_found": 404, "home_busy": 409, "home_not_mounted": 409, "quota_home_full": 409}


def spool_dir() -> Path:
    path = Path(settings.HOME_SPOOL_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _spool(name: str) -> Path:
    if not _SPOOL_NAME.fullmatch(name):
        raise ServiceError(gettext("Bad transfer name."), code="invalid_request")
    return spool_dir() / name


def _path(raw: Any) -> HomePath:
    try:
        return clean_path(raw if raw is not None else "")
    except InvalidPath as error:
        raise ServiceError(str(error), code="invalid_path") from None


# --- who sees which home (web) --------------------------------------------------------------


def open_home(*, tenant: Tenant, actor: User, owner: User | None = None, ip: str | None = None) -> HomeDisk:
    """The actor's own home (made on first visit), or, where the tenant allows it, a member's for an admin."""
    if owner is None or owner.pk == actor.pk:
        return homes.home_for_files(tenant=tenant, user=actor)
    membership = tenant.memberships.filter(user=actor).first()
    if membership is None or not membership.is_admin or not tenant.allow_admin_file_access:
        raise NotFound(gettext("No such home folder."))
    home = homes.home_of(tenant=tenant, user=owner)
    if home is None:
        raise NotFound(gettext("That person has no home folder yet."))
    events.home_opened_by_admin(actor=actor, home=home, ip=ip)
    return home


def route(home: HomeDisk) -> tuple[str, Desktop | None]:
    """("guest", desktop) while a running desktop has the home, ("host", None) while none has it."""
    desktop = Desktop.objects.filter(home_disk__pk=home.pk).select_related("host").first()
    if desktop is None or desktop.state not in homes.HOLDING_STATES:
        return "host", None
    if desktop.state == DesktopState.RUNNING:
        return "guest", desktop
    raise Conflict(
        gettext("Your home folder is on %(name)s, which is %(lower)s; try again once it is running or stopped.")
        % {"name": desktop.name, "lower": desktop.get_state_display().lower()},
        code="home_busy",
    )


def _call(home: HomeDisk, op: str, **args: Any) -> Any:
    return dispatch.files_call(home.pk, op, args, host_name=home.host.name)


# --- operations (web) -------------------------------------------------------------------------


def listing(*, home: HomeDisk, path: str) -> dict:
    """A folder's entries, where they were read from, and the space used against the home's size."""
    return _call(home, "list", path=str(_path(path)))


def make_folder(*, home: HomeDisk, path: str) -> None:
    target = _path(path)
    if target.is_root:
        raise ServiceError(gettext("Name the new folder."), code="invalid_path")
    _call(home, "mkdir", path=str(target))


def move(*, home: HomeDisk, source: str, dest: str) -> None:
    """Rename or move (a file or a folder) within the home."""
    _call(home, "move", source=str(_path(source)), dest=str(_path(dest)))


def delete(*, home: HomeDisk, path: str, actor: User, ip: str | None = None) -> None:
    target = _path(path)
    via = _call(home, "delete", path=str(target))
    events.file_deleted(actor=actor, home=home, path=str(target), via=via, ip=ip)


def begin_upload(*, home: HomeDisk, path: str, size: int, actor: User) -> HomeUpload:
    """Reserve an upload of `size` bytes to `path`; chunks follow with `receive_chunk`."""
    target = _path(path)
    if target.is_root:
        raise ServiceError(gettext("Name the file."), code="invalid_path")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ServiceError(gettext("The size must be a whole number of bytes."), code="invalid_request")
    if size > home.size_bytes:
        raise LimitExceeded(
            gettext("That file is larger than your whole home folder (%(size_gib)s GiB).")
            % {"size_gib": home.size_gib},
            code="quota_home_full",
        )
    upload = HomeUpload.objects.create(tenant=home.tenant, home=home, user=actor, path=str(target), size=size)
    _spool(upload.spool_name).touch(mode=0o600)
    return upload


def upload_of(*, home: HomeDisk, upload_id: str) -> HomeUpload:
    upload = HomeUpload.objects.filter(home=home, pk=upload_id).first() if _is_uuid(upload_id) else None
    if upload is None:
        raise NotFound(gettext("No such upload (finished, cancelled or never begun)."))
    return upload


def _is_uuid(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F-]{32,36}", value or ""))


def receive_chunk(*, upload: HomeUpload, offset: int, stream: IO[bytes], length: int) -> HomeUpload:
    """Append one chunk at `offset` (which must be what has arrived so far: resumable, never overlapping)."""
    if length > MAX_CHUNK_BYTES:
        raise ServiceError(
            gettext("A chunk is at most %(value)s MiB.") % {"value": MAX_CHUNK_BYTES // (1024 * 1024)},
            code="chunk_too_large",
        )
    with transaction.atomic():
        locked = HomeUpload.objects.select_for_update().get(pk=upload.pk)
        if offset != locked.received:
            raise Conflict(
                gettext("Expected the chunk at byte %(received)s.") % {"received": locked.received}, code="wrong_offset"
            )
        if locked.received + length > locked.size:
            raise ServiceError(gettext("More bytes than the upload announced."), code="upload_too_long")
        spool = _spool(locked.spool_name)
        with spool.open("r+b") as out:
            out.truncate(locked.received)  # a chunk cut off midway left bytes past the last good offset
            out.seek(locked.received)
            remaining = length
            while remaining:
                piece = stream.read(min(_COPY, remaining))
                if not piece:
                    break
                out.write(piece)
                remaining -= len(piece)
        if remaining:
            raise ServiceError(gettext("The chunk ended early; send it again."), code="chunk_incomplete")
        locked.received += length
        locked.save(update_fields=["received"])
    return locked


def finish_upload(*, upload: HomeUpload, actor: User, ip: str | None = None) -> dict:
    """Write the complete upload into the home under its final name, then forget the spooled bytes."""
    if upload.received != upload.size:
        raise Conflict(
            gettext("%(value)s bytes are still missing.") % {"value": upload.size - upload.received},
            code="upload_incomplete",
        )
    home = upload.home
    try:
        result = _call(home, "put", path=upload.path, spool=upload.spool_name)
    finally:
        # Whatever the outcome, the spooled bytes go; a failed write left no file under the final name.
        _spool(upload.spool_name).unlink(missing_ok=True)
        upload.delete()
    events.file_uploaded(actor=actor, home=home, path=upload.path, size=upload.size, via=result["via"], ip=ip)
    return result


def cancel_upload(*, upload: HomeUpload) -> None:
    _spool(upload.spool_name).unlink(missing_ok=True)
    upload.delete()


def download(*, home: HomeDisk, path: str, actor: User, ip: str | None = None) -> tuple[Iterator[bytes], str, int]:
    """Stage a file (or a folder as a zip) in the spool on the worker, then stream it: (chunks, name, size)."""
    target = _path(path)
    name = f"down-{secrets.token_hex(12)}"
    result = _call(home, "get", path=str(target), spool=name)
    events.file_downloaded(actor=actor, home=home, path=str(target), size=result["size"], via=result["via"], ip=ip)
    filename = (target.name or "home") + (".zip" if result["zip"] else "")
    return _stream_and_remove(_spool(name)), filename, result["size"]


def _stream_and_remove(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_COPY):
                yield chunk
    finally:
        path.unlink(missing_ok=True)


def storage_by_tenant() -> list[dict]:
    """For the operators' dashboard: each tenant's home disks, their promised and used space."""
    rows = HomeDisk.objects.values("tenant__name").annotate(
        disks=Count("id"), size_gib=Sum("size_gib"), used_bytes=Sum("used_bytes")
    )
    return sorted((dict(row) for row in rows), key=lambda r: r["tenant__name"])


# --- the worker's side ------------------------------------------------------------------------


def perform(*, home_id: int, op: str, args: dict) -> Any:
    """Carry out one file operation on this worker (of the home's host). Raises ServiceError to refuse."""
    home = HomeDisk.objects.select_related("host", "tenant").filter(pk=home_id).first()
    if home is None:
        raise NotFound(gettext("No such home folder."))
    if home.state != HomeDiskState.READY:
        home = homes.create_home_volume(home)  # first use from the file manager, before any desktop
    try:
        with transaction.atomic():
            # Held while the host side works on the image: an attach (homes.claim) waits for it to finish.
            home = HomeDisk.objects.select_for_update().select_related("host").get(pk=home_id)
            via, desktop = route(home)
            if via == "guest":
                assert desktop is not None and desktop.host is not None
                hv = get_hypervisor(desktop.host.uri)
                domain = desktop.domain_name
                files: HomeFiles = AgentFiles(
                    lambda command, timeout: hv.agent_command(domain, command, timeout), serial=home.serial
                )
                return _run(files, op, args, via=via, home=home)
            if home.encrypted:
                # The decrypted view lives only for this one operation; the bytes at rest stay LUKS.
                passphrase = disk_keys.passphrase_of(disk_keys.home_key_of(home))
                with luks.opened(home.volume_path, passphrase) as view:
                    return _run(ImageFiles(view, check_lock=False), op, args, via=via, home=home)
            return _run(ImageFiles(home.volume_path), op, args, via=via, home=home)
    except HomeFsError as error:
        raise ServiceError(error.detail, code=error.code, status=_STATUS.get(error.code, error.status)) from None
    except InvalidPath as error:
        raise ServiceError(str(error), code="invalid_path") from None


def _run(files: HomeFiles, op: str, args: dict, *, via: str, home: HomeDisk) -> Any:
    if op == "list":
        path = clean_path(args["path"])
        entries = [asdict(entry) for entry in files.list(path)]
        usage = files.usage()
        HomeDisk.objects.filter(pk=home.pk).update(used_bytes=usage.used_bytes)
        return {"path": str(path), "entries": entries, "used": usage.used_bytes, "total": usage.total_bytes, "via": via}
    if op == "mkdir":
        files.mkdir(clean_path(args["path"]))
        return {"via": via}
    if op == "move":
        files.move(clean_path(args["source"]), clean_path(args["dest"]))
        return {"via": via}
    if op == "delete":
        files.delete(clean_path(args["path"]))
        return via
    if op == "put":
        with _spool(args["spool"]).open("rb") as source:
            size = files.write(clean_path(args["path"]), source)
        HomeDisk.objects.filter(pk=home.pk).update(used_bytes=files.usage().used_bytes)
        return {"via": via, "size": size}
    if op == "get":
        return _stage(files, clean_path(args["path"]), _spool(args["spool"]), via=via)
    raise ServiceError(f"Unknown file operation {op!r}.", code="invalid_request")


def _stage(files: HomeFiles, path: HomePath, dest: Path, *, via: str) -> dict:
    """Copy a file, or a folder as a zip (written as it is read), into the spool for the web to stream."""
    entry = files.stat(path) if not path.is_root else None
    is_dir = entry is None or entry.kind == "dir"
    partial = dest.with_name(dest.name + ".part")
    try:
        with partial.open("wb") as out:
            if is_dir:
                with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                    _zip_folder(files, path, archive, prefix="")
            else:
                for chunk in files.read(path):
                    out.write(chunk)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return {"via": via, "size": dest.stat().st_size, "zip": is_dir}


def _zip_folder(files: HomeFiles, folder: HomePath, archive: zipfile.ZipFile, *, prefix: str) -> None:
    for entry in files.list(folder):
        child = HomePath((*folder.parts, entry.name))
        name = f"{prefix}{entry.name}"
        if entry.kind == "dir":
            archive.writestr(name + "/", b"")
            _zip_folder(files, child, archive, prefix=name + "/")
        elif entry.kind == "file":
            with archive.open(name, "w", force_zip64=True) as member:
                for chunk in files.read(child):
                    member.write(chunk)
        # Symlinks and devices are left out: a link could point anywhere, and the zip must not follow it.
