"""LibvirtHypervisor against a real libvirtd + QEMU: streams, backing chains, lifecycle under TCG."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from lxml import etree

from hosts.hypervisor.base import DomainState
from hosts.hypervisor.domain import DiskSpec, DomainSpec, GraphicsSpec, parse_xml
from hosts.hypervisor.errors import HypervisorError, OperationFailed
from tests.services import missing, require_tool

if TYPE_CHECKING:
    from hosts.hypervisor.libvirt_driver import LibvirtHypervisor

pytestmark = pytest.mark.qemu

QEMU_URI = os.environ.get("QUETZAL_TEST_QEMU_URI", "qemu:///system")
POOL_PARENT = os.environ.get("QUETZAL_TEST_POOL_PARENT", "/var/lib/libvirt/images")


@pytest.fixture(scope="module")
def hv() -> Iterator[LibvirtHypervisor]:
    """A driver on a libvirtd that answers."""
    try:
        from hosts.hypervisor.libvirt_driver import LibvirtHypervisor
    except ImportError as exc:
        missing(f"libvirt-python ({exc})")
    hypervisor = LibvirtHypervisor(QEMU_URI, poll_interval_s=0.1)
    try:
        info = hypervisor.host_info()
    except HypervisorError as exc:
        missing(f"libvirtd at {QEMU_URI} ({exc}; run scripts/start-libvirtd)")
    assert "qemu" in info.virt_types
    yield hypervisor
    hypervisor.close()


@pytest.fixture
def pool(hv: LibvirtHypervisor) -> Iterator[str]:
    """A scratch directory pool made and removed through libvirt (so it works remotely too)."""
    import libvirt

    conn = hv.connection.get()
    name = f"qtest-hv-{uuid.uuid4().hex[:8]}"
    root = etree.Element("pool", type="dir")
    etree.SubElement(root, "name").text = name
    etree.SubElement(etree.SubElement(root, "target"), "path").text = f"{POOL_PARENT}/{name}"
    p = conn.storagePoolDefineXML(etree.tostring(root, encoding="unicode"), 0)
    p.build(0)
    p.create(0)
    yield name
    p.refresh(0)  # pick up files QEMU and virtlogd created (serial log)
    for vol in p.listAllVolumes(0):
        vol.delete(0)
    p.destroy()
    # A file QEMU or virtlogd left behind makes delete fail; the undefine still runs.
    with contextlib.suppress(libvirt.libvirtError):
        p.delete(0)
    p.undefine()


@pytest.fixture(scope="module")
def qemu_img() -> str:
    """The qemu-img binary (qemu-utils)."""
    return require_tool("qemu-img", "qemu-utils")


def make_qcow2(qemu_img: str, path: Path, size: str = "64M") -> Path:
    """A local qcow2 image with a recognisable first megabyte."""
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path), size], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0xab 0 1M", str(path)], check=True, capture_output=True)
    return path


def test_it_uploads_and_downloads_images_over_streams(
    hv: LibvirtHypervisor, pool: str, qemu_img: str, tmp_path: Path
) -> None:
    src = make_qcow2(qemu_img, tmp_path / "golden.qcow2")
    path = hv.volume_upload(pool, "golden.qcow2", str(src))
    assert path == f"{hv.pool_path(pool)}/golden.qcow2"
    dest = tmp_path / "back.qcow2"
    hv.volume_download(pool, "golden.qcow2", str(dest))
    assert dest.read_bytes() == src.read_bytes()


def test_it_finds_and_deletes_a_volume_made_beside_libvirt(hv: LibvirtHypervisor, pool: str, qemu_img: str) -> None:
    # Given a file qemu-img made in the pool's directory, as LUKS homes and disks are made, unknown to libvirt
    made = make_qcow2(qemu_img, Path(hv.pool_path(pool)) / "qz-home-beside.qcow2")
    # Then libvirt's view of the pool finds it, and deleting it by name removes the file
    assert hv.volume_exists(pool, "qz-home-beside.qcow2")
    assert hv.volume_path(pool, "qz-home-beside.qcow2") == str(made)
    hv.volume_delete(pool, "qz-home-beside.qcow2")
    assert not made.exists()


def test_it_refuses_a_raw_file_uploaded_as_qcow2(hv: LibvirtHypervisor, pool: str, tmp_path: Path) -> None:
    src = tmp_path / "disk.raw"
    src.write_bytes(os.urandom(65536))
    with pytest.raises(OperationFailed, match="not qcow2"):
        hv.volume_upload(pool, "disk.qcow2", str(src))
    assert not hv.volume_exists(pool, "disk.qcow2")
    hv.volume_upload(pool, "disk.raw", str(src), fmt="raw")
    assert hv.volume_exists(pool, "disk.raw")


def test_it_makes_linked_clones_on_a_backing_image(
    hv: LibvirtHypervisor, pool: str, qemu_img: str, tmp_path: Path
) -> None:
    golden = hv.volume_upload(pool, "golden.qcow2", str(make_qcow2(qemu_img, tmp_path / "g.qcow2")))
    clone = hv.volume_create_linked_clone(pool, "desktop.qcow2", golden)
    vol = hv.connection.get().storageVolLookupByPath(clone)
    root = parse_xml(vol.XMLDesc(0))
    assert root.findtext("backingStore/path") == golden
    assert root.find("backingStore/format").get("type") == "qcow2"
    assert vol.info()[1] == 64 * 2**20
    # The overlay reads the golden image's data through the backing chain.
    dest = tmp_path / "flat.raw"
    subprocess.run([qemu_img, "convert", "-U", "-O", "raw", clone, str(dest)], check=True)
    assert dest.read_bytes()[: 2**20] == b"\xab" * 2**20


def test_it_runs_a_domain_through_its_lifecycle_under_tcg(
    hv: LibvirtHypervisor, pool: str, qemu_img: str, tmp_path: Path
) -> None:
    # Given: a desktop on a linked clone with a cloud-init seed CD, no OS (the BIOS just waits)
    golden = hv.volume_upload(pool, "golden.qcow2", str(make_qcow2(qemu_img, tmp_path / "g.qcow2")))
    disk = hv.volume_create_linked_clone(pool, "desktop.qcow2", golden)
    seed = hv.volume_create(pool, "seed.iso", 2**20, fmt="raw")
    spec = DomainSpec(
        name=f"qtest-hv-{uuid.uuid4().hex[:8]}",
        uuid=str(uuid.uuid4()),
        desktop_id=987654,
        tenant_slug="acme",
        vcpus=1,
        memory_mib=128,
        virt_type="qemu",
        disks=(DiskSpec(disk), DiskSpec.cloud_init_seed(seed)),
        graphics=GraphicsSpec(listen_address="127.0.0.1"),
        serial_log_path=f"{hv.pool_path(pool)}/serial.log",
    )
    hv.define(spec)
    try:
        # When: it starts, then Then: it is listed with our metadata and serves VNC
        hv.start(spec.name)
        listed = {d.name: d for d in hv.list_domains()}
        assert listed[spec.name].desktop_id == 987654
        assert listed[spec.name].state is DomainState.RUNNING
        address = hv.console_address(spec.name)
        assert address.host == "127.0.0.1" and address.port >= 5900
        with socket.create_connection((address.host, address.port), timeout=10) as vnc:
            assert vnc.recv(12).startswith(b"RFB ")
        stats = {s.name: s for s in hv.all_domain_stats()}[spec.name]
        assert stats.cpu_time_ns > 0 and stats.memory_total_kib == 128 * 1024

        # Snapshots skip the read-only seed CD and revert the running guest.
        hv.snapshot_create(spec.name, "s1")
        assert [s.name for s in hv.snapshot_list(spec.name)] == ["s1"]
        hv.snapshot_revert(spec.name, "s1")
        assert hv.state(spec.name) is DomainState.RUNNING

        hv.suspend(spec.name)
        assert hv.state(spec.name) is DomainState.PAUSED
        hv.resume(spec.name)
        hv.managed_save(spec.name)
        assert hv.has_managed_save(spec.name)
        hv.start(spec.name)
        assert hv.state(spec.name) is DomainState.RUNNING
        assert not hv.has_managed_save(spec.name)

        # No OS answers the ACPI button, so shutdown falls back to destroy after the timeout.
        assert hv.shutdown(spec.name, timeout_s=1) is False
        assert hv.state(spec.name) is DomainState.SHUTOFF

        # Undefine copes with a save image and snapshot metadata left on the domain.
        hv.start(spec.name)
        hv.managed_save(spec.name)
    finally:
        hv.undefine(spec.name)
    assert spec.name not in {d.name for d in hv.list_domains()}


def _has_clipboard_channel(hv: LibvirtHypervisor, name: str) -> bool:
    xml = hv.connection.get().lookupByName(name).XMLDesc(0)
    return parse_xml(xml).find("devices/channel[@type='qemu-vdagent']") is not None


def test_it_saves_snapshots_and_restores_a_desktop_with_clipboard_and_sound(
    hv: LibvirtHypervisor, pool: str, qemu_img: str, tmp_path: Path
) -> None:
    # Given: a graphical desktop's devices (the qemu-vdagent clipboard channel, HDA sound to VNC), no OS
    disk = hv.volume_upload(pool, "desktop.qcow2", str(make_qcow2(qemu_img, tmp_path / "d.qcow2")))
    spec = DomainSpec(
        name=f"qtest-gui-{uuid.uuid4().hex[:8]}",
        uuid=str(uuid.uuid4()),
        desktop_id=987655,
        tenant_slug="acme",
        vcpus=1,
        memory_mib=128,
        virt_type="qemu",
        disks=(DiskSpec(disk),),
        graphics=GraphicsSpec(listen_address="127.0.0.1"),
        clipboard_channel=True,
        sound=True,
    )
    hv.define(spec)
    try:
        hv.start(spec.name)
        assert _has_clipboard_channel(hv, spec.name)
        # When: it hibernates (QEMU 7.2 refuses to save memory with that channel plugged)
        hv.managed_save(spec.name)
        # Then: it is saved, and once restored it has its clipboard channel again
        assert hv.has_managed_save(spec.name)
        hv.start(spec.name)
        assert hv.state(spec.name) is DomainState.RUNNING and not hv.has_managed_save(spec.name)
        assert _has_clipboard_channel(hv, spec.name)
        # And a snapshot of the running desktop (its memory too) keeps the channel; so does reverting to it
        hv.snapshot_create(spec.name, "running")
        assert _has_clipboard_channel(hv, spec.name)
        hv.snapshot_revert(spec.name, "running")
        assert hv.state(spec.name) is DomainState.RUNNING and _has_clipboard_channel(hv, spec.name)
        # And its definition never lost the channel
        inactive = hv.connection.get().lookupByName(spec.name).XMLDesc(2)  # VIR_DOMAIN_XML_INACTIVE
        assert parse_xml(inactive).find("devices/channel[@type='qemu-vdagent']") is not None
    finally:
        hv.undefine(spec.name)
