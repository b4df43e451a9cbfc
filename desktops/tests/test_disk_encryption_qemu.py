"""Encrypted desktop disks on a real libvirtd + QEMU: one boot proves encryption at rest, the key and its erasure."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from desktops.choices import KeyPurpose, OperationStatus
from desktops.models import DataKey, Desktop, HomeDisk
from desktops.services import disk_keys, execution, spec
from desktops.services.requests import request_action, request_create
from desktops.tests.factories import DataKeyFactory
from hosts.hypervisor import DomainState, get_hypervisor
from hosts.tests.qemu_fixtures import VncKeyboard
from tests.waiting import wait_until

pytestmark = pytest.mark.qemu

# Typed into the guest; nothing else puts these bytes on the disk.
MARKER = "qzcleartext" + uuid.uuid4().hex[:12]


def _serial(desktop: Desktop) -> str:
    path = Path(spec.serial_log_path(desktop))
    return path.read_text(errors="replace") if path.exists() else ""


def _qemu_img_convert(disk: Path, passphrase: bytes, dest: Path) -> subprocess.CompletedProcess[str]:
    """Decrypt the overlay (and its base) into a raw file with qemu-img, the secret through a pipe."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, passphrase)
    os.close(write_fd)
    try:
        return subprocess.run(
            [
                "qemu-img", "convert", "--object", f"secret,id=s0,file=/dev/fd/{read_fd}",
                "--image-opts", f"driver=qcow2,file.filename={disk},encrypt.key-secret=s0",
                "-O", "raw", str(dest),
            ],
            pass_fds=(read_fd,), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(read_fd)


def test_it_keeps_a_guests_data_encrypted_at_rest_and_erases_it_with_the_desktop(
    alice, qemu_host, demo_template, tmp_path, settings
):
    # Given the background refill, with one spare wanted per template and a spare left from an old base
    settings.DESKTOP_DISK_SPARES = 1
    hv = get_hypervisor(qemu_host.uri)
    stale_file = Path(hv.pool_path(qemu_host.storage_pool)) / f"qtest-stale-{uuid.uuid4().hex[:8]}.qcow2"
    stale_file.write_bytes(b"")
    stale = DataKeyFactory(host=qemu_host, spare_path=str(stale_file), spare_backing_path="/old.qcow2")
    # When it runs: the stale spare goes, and one spare for the demo template is made on its base
    assert disk_keys.refill_spares(host_ids=[qemu_host.pk]) == 1
    assert not DataKey.objects.filter(pk=stale.pk).exists() and not stale_file.exists()
    spare = DataKey.objects.get(host=qemu_host, desktop__isnull=True)
    assert Path(spare.spare_path).exists()
    # The guest writes to /data, where a person's home would be mounted over the desktop's own disk: with the
    # tenant's home quota below one home, the desktop runs without one, so /data is the disk under test here.
    alice.tenant.home_disk_gib, alice.tenant.quota_home_gib = 2, 1
    alice.tenant.save()
    desktop, operation = request_create(tenant=alice.tenant, user=alice.member, template=demo_template)
    try:
        # When the worker creates and boots the desktop
        execution.run(operation.pk)
        operation.refresh_from_db()
        assert operation.status == OperationStatus.SUCCEEDED, operation.error
        desktop.refresh_from_db()
        # Then its disk is the spare, keyed by the spare's own key, and libvirt holds no secret once QEMU runs
        key = DataKey.objects.get(desktop=desktop)
        assert key.pk == spare.pk and key.purpose == KeyPurpose.DISK and desktop.disk_encrypted
        assert not HomeDisk.objects.filter(attached_to=desktop).exists()
        wait_until(lambda: "QUETZAL-DEMO-READY" in _serial(desktop) or "__READY__" in _serial(desktop), 120)
        listed = subprocess.run(["virsh", "-c", qemu_host.uri, "secret-list"], capture_output=True, text=True)
        assert str(key.uuid) not in listed.stdout
        assert not Path(f"/etc/libvirt/secrets/{key.uuid}.base64").exists()

        # When the guest writes a marker to its disk and powers off (its shutdown hook syncs and unmounts)
        console = hv.console_address(desktop.domain_name)
        keyboard = VncKeyboard(console.host, console.port)
        try:
            keyboard.type_text(f"echo {MARKER} > /data/marker; sync; poweroff\n")
        finally:
            keyboard.close()
        wait_until(lambda: hv.state(desktop.domain_name) == DomainState.SHUTOFF, 90)

        # Then the marker is not in the disk file on the host, in clear
        disk = Path(hv.pool_path(qemu_host.storage_pool)) / spec.disk_volume_name(desktop)
        assert MARKER.encode() not in disk.read_bytes()
        # ...though it is there for whoever holds the key (so the guest really wrote it)
        right = _qemu_img_convert(disk, disk_keys.passphrase_of(key), tmp_path / "right.raw")
        assert right.returncode == 0, right.stderr
        assert MARKER.encode() in (tmp_path / "right.raw").read_bytes()
        # ...and the same disk with a wrong key does not open
        wrong = _qemu_img_convert(disk, os.urandom(32).hex().encode(), tmp_path / "wrong.raw")
        assert wrong.returncode != 0 and "Invalid password" in wrong.stderr

        # When the desktop is deleted
        delete = request_action(desktop=Desktop.objects.get(pk=desktop.pk), kind="delete", actor=alice.member)
        execution.run(delete.pk)
        assert Desktop.objects.get(pk=desktop.pk).state == "deleted"
        # Then its key row is gone (crypto-erase) and so is the disk file
        assert not DataKey.objects.filter(pk=key.pk).exists()
        assert not disk.exists()
    finally:
        execution.remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)
        for row in DataKey.objects.filter(host=qemu_host, desktop__isnull=True):
            hv.encrypted_file_delete(row.spare_path)
