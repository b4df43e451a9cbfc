"""Storage pool and volume operations on an open libvirt connection."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import BinaryIO

import libvirt
from lxml import etree

from hosts.hypervisor.domain import parse_xml
from hosts.hypervisor.errors import OperationFailed
from hosts.hypervisor.parsing import parse_pool_path

__all__ = [
    "pool_path",
    "volume_capacity",
    "volume_create",
    "volume_create_linked_clone",
    "volume_delete",
    "volume_download",
    "volume_exists",
    "volume_format",
    "volume_path",
    "volume_resize",
    "volume_upload",
    "volume_xml",
]

VOLUME_FORMATS = ("qcow2", "raw")


def volume_xml(
    name: str,
    capacity_bytes: int,
    fmt: str,
    *,
    backing_path: str | None = None,
    backing_format: str | None = None,
) -> str:
    """Volume XML for a sparse volume, optionally a qcow2 overlay on backing_path."""
    if fmt not in VOLUME_FORMATS:
        raise ValueError(f"unsupported volume format {fmt!r}")
    if capacity_bytes <= 0:
        raise ValueError("capacity_bytes must be positive")
    vol = etree.Element("volume")
    etree.SubElement(vol, "name").text = name
    etree.SubElement(vol, "capacity", unit="bytes").text = str(capacity_bytes)
    # Zero allocation keeps files sparse; a desktop overlay grows as the guest writes.
    etree.SubElement(vol, "allocation", unit="bytes").text = "0"
    target = etree.SubElement(vol, "target")
    etree.SubElement(target, "format", type=fmt)
    if fmt == "qcow2":
        # libvirt defaults to qcow2 v2 (compat 0.10); v3 has zero clusters and lazy refcounts.
        etree.SubElement(target, "compat").text = "1.1"
    if backing_path is not None:
        backing = etree.SubElement(vol, "backingStore")
        etree.SubElement(backing, "path").text = backing_path
        etree.SubElement(backing, "format", type=backing_format or "qcow2")
    return etree.tostring(vol, encoding="unicode")


def _pool(conn: libvirt.virConnect, pool: str) -> libvirt.virStoragePool:
    """Look a pool up by name."""
    return conn.storagePoolLookupByName(pool)


def _volume(conn: libvirt.virConnect, pool: str, name: str) -> libvirt.virStorageVol:
    """Look a volume up by pool and name, refreshing the pool once when libvirt does not know it yet.

    Some volumes are files made beside libvirt (qemu-img writes LUKS homes and disks): until the pool is refreshed
    libvirt says they do not exist, so a delete "succeeded" and left the file (a full test run left a dozen homes).
    """
    found = _pool(conn, pool)
    try:
        return found.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
    found.refresh(0)
    return found.storageVolLookupByName(name)


def pool_path(conn: libvirt.virConnect, pool: str) -> str:
    """The target directory of a storage pool."""
    return parse_pool_path(_pool(conn, pool).XMLDesc(0))


def volume_path(conn: libvirt.virConnect, pool: str, name: str) -> str:
    """The path of a volume on the host."""
    return _volume(conn, pool, name).path()


def volume_capacity(conn: libvirt.virConnect, pool: str, name: str) -> int:
    """A volume's virtual size in bytes."""
    vol = _volume(conn, pool, name)
    vol.storagePoolLookupByVolume().refresh(0)  # files grown behind libvirt's back (blockResize) show then
    return int(_volume(conn, pool, name).info()[1])


def volume_resize(conn: libvirt.virConnect, pool: str, name: str, capacity_bytes: int) -> None:
    """Grow a volume that no running domain uses (libvirt runs qemu-img resize on qcow2 files)."""
    _volume(conn, pool, name).resize(capacity_bytes, 0)


def volume_exists(conn: libvirt.virConnect, pool: str, name: str) -> bool:
    """Whether the pool has a volume of that name."""
    try:
        _volume(conn, pool, name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return False
        raise
    return True


def volume_create(conn: libvirt.virConnect, pool: str, name: str, capacity_bytes: int, fmt: str) -> str:
    """Create an empty sparse volume; returns its path."""
    vol = _pool(conn, pool).createXML(volume_xml(name, capacity_bytes, fmt), 0)
    return vol.path()


def volume_create_linked_clone(
    conn: libvirt.virConnect,
    pool: str,
    name: str,
    backing_path: str,
    backing_format: str,
    capacity_bytes: int | None,
) -> str:
    """Create a qcow2 overlay whose reads fall through to backing_path; returns its path."""
    if capacity_bytes is None:
        # libvirt requires a capacity; the overlay is as large as the image it covers.
        capacity_bytes = conn.storageVolLookupByPath(backing_path).info()[1]
    xml = volume_xml(
        name,
        capacity_bytes,
        "qcow2",
        backing_path=backing_path,
        backing_format=backing_format,
    )
    return _pool(conn, pool).createXML(xml, 0).path()


def volume_delete(conn: libvirt.virConnect, pool: str, name: str) -> None:
    """Delete a volume; a missing volume is success."""
    try:
        _volume(conn, pool, name).delete(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise


def _send_chunk(_stream: libvirt.virStream, nbytes: int, fh: BinaryIO) -> bytes:
    """sendAll callback: the next chunk of the source file (b"" at the end)."""
    return fh.read(nbytes)


def _recv_chunk(_stream: libvirt.virStream, data: bytes, fh: BinaryIO) -> int:
    """recvAll callback: append a received chunk to the destination file."""
    return fh.write(data)


def volume_format(conn: libvirt.virConnect, pool: str, name: str) -> str | None:
    """The format libvirt reports for a volume (None when it reports none)."""
    root = parse_xml(_volume(conn, pool, name).XMLDesc(0))
    fmt = root.find("target/format")
    return fmt.get("type") if fmt is not None else None


def volume_upload(conn: libvirt.virConnect, pool: str, name: str, src_path: str, fmt: str) -> str:
    """Create a volume sized to src_path and stream the file into it; returns its path."""
    if fmt not in VOLUME_FORMATS:
        raise ValueError(f"unsupported volume format {fmt!r}")
    size = os.path.getsize(src_path)
    with open(src_path, "rb") as fh:
        # A raw container of exactly the file's size: the upload writes the image byte for
        # byte, so pre-formatting it as qcow2 would only leave a stale header behind.
        vol = _pool(conn, pool).createXML(volume_xml(name, max(size, 1), "raw"), 0)
        stream = conn.newStream(0)
        try:
            vol.upload(stream, 0, size, 0)
            stream.sendAll(_send_chunk, fh)
            stream.finish()
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            with contextlib.suppress(libvirt.libvirtError):
                vol.delete(0)
            raise
    # A dir pool re-probes the header on refresh; a file that is not the qcow2 the caller
    # promised must not be booted as one.
    _pool(conn, pool).refresh(0)
    detected = volume_format(conn, pool, name)
    if fmt == "qcow2" and detected not in (None, "qcow2"):
        with contextlib.suppress(libvirt.libvirtError):
            _volume(conn, pool, name).delete(0)
        raise OperationFailed(f"{src_path} is {detected}, not qcow2")
    return vol.path()


def volume_download(conn: libvirt.virConnect, pool: str, name: str, dest_path: str) -> None:
    """Stream a volume's bytes into dest_path, replacing it only when complete."""
    vol = _volume(conn, pool, name)
    directory = os.path.dirname(os.path.abspath(dest_path))
    fd, tmp_path = tempfile.mkstemp(prefix=".download-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            stream = conn.newStream(0)
            try:
                vol.download(stream, 0, 0, 0)
                stream.recvAll(_recv_chunk, fh)
                stream.finish()
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()
                raise
        os.replace(tmp_path, dest_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
