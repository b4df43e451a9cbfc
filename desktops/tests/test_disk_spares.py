"""The background refill of spare encrypted disks, on a host whose files are on this machine (no libvirtd).

A host of libvirt's test driver has no files of its own, so it keeps plain disks. Given a storage pool that is a
directory here and qemu-img run here (the local host shell, as a qemu:/// host has), the same refill makes real
LUKS overlays in that directory: what a spare costs and holds is checked on the files themselves.
"""

from __future__ import annotations

import json
import logging
import subprocess
import uuid
from pathlib import Path

from desktops.models import DataKey
from desktops.services import disk_keys
from desktops.tests.conftest import NODE_XML, make_test_host, place_image
from desktops.tests.factories import DataKeyFactory, DesktopFactory, DesktopTemplateFactory
from hosts.choices import CopyState, HostState
from hosts.hypervisor import libvirt_driver
from hosts.hypervisor.host_shell import LOCAL
from hosts.models import Host
from hosts.services.images import desktop_disk_plan

GIB = 1024**3


def _host_with_files(tmp_path: Path, monkeypatch, image, name: str) -> Host:
    """A test-driver host whose pool is tmp_path/<name>, with the image's base there as a real file."""
    pool = tmp_path / name
    pool.mkdir()
    host = make_test_host(tmp_path, name=name)
    node = Path(host.uri.removeprefix("test://"))
    node.write_text(
        NODE_XML.format(cpus=16, memory_kib=64 * GIB // 1024, pool_uuid=uuid.uuid4()).replace(
            "/var/lib/libvirt/images", str(pool)
        )
    )
    # The hypervisor the process uses for this URI, with tools run here: qemu-img reaches the pool's files.
    monkeypatch.setitem(libvirt_driver._hypervisors, host.uri, libvirt_driver.LibvirtHypervisor(host.uri, shell=LOCAL))
    copy = place_image(host, image)
    Path(copy.volume_path).write_bytes(Path(image.source_path).read_bytes())
    return host


def _luks(path: str) -> dict:
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True, text=True, check=True)
    return json.loads(info.stdout)


def _opens(path: Path, passphrase: bytes) -> bool:
    """Whether qemu-img can open the overlay's LUKS layer with this passphrase (check reads its metadata)."""
    argv = ["qemu-img", "check", "-U", "--object", "secret,id=s0,file=/dev/stdin", "--image-opts",
            f"driver=qcow2,file.filename={path},encrypt.key-secret=s0"]  # fmt: skip
    return subprocess.run(argv, input=passphrase, capture_output=True).returncode == 0


def _spares(host: Host) -> list[DataKey]:
    return list(DataKey.objects.filter(host=host, desktop__isnull=True).order_by("pk"))


def test_it_tops_up_each_templates_spares_with_real_encrypted_files_and_drops_stale_ones(
    alice, image, template, tmp_path, monkeypatch, settings
):
    # Given two spares wanted per template base and size, a host whose tools run here, and on it:
    settings.DESKTOP_DISK_SPARES = 2
    host = _host_with_files(tmp_path, monkeypatch, image, "pool")
    assert disk_keys.encrypts_disks(host)
    plan = desktop_disk_plan(host=host, image=image, capacity_bytes=template.disk_gib * GIB)
    # a second template of the same image and size (it shares the first one's spares),
    DesktopTemplateFactory(image=image, disk_gib=template.disk_gib)
    # a third of another size, whose two spares are made already,
    bigger = desktop_disk_plan(host=host, image=image, capacity_bytes=(template.disk_gib + 10) * GIB)
    DesktopTemplateFactory(image=image, disk_gib=template.disk_gib + 10)
    for n in (1, 2):
        DataKeyFactory(
            host=host, spare_path=f"{bigger.backing_path}.big{n}", spare_backing_path=bigger.backing_path,
            spare_capacity_bytes=bigger.capacity_bytes,
        )  # fmt: skip
    # one spare of the template already made,
    ready = DataKeyFactory(
        host=host,
        spare_path=str(Path(plan.backing_path).parent / "ready.qcow2"),
        spare_backing_path=plan.backing_path,
        spare_capacity_bytes=plan.capacity_bytes,
    )
    # a spare made for a base no template uses any more, its file still there,
    stale_file = Path(plan.backing_path).parent / "stale.qcow2"
    stale_file.write_bytes(b"old")
    stale = DataKeyFactory(
        host=host, spare_path=str(stale_file), spare_backing_path="/old/base.qcow2", spare_capacity_bytes=1
    )
    # and a desktop's own disk key (a claimed spare), which is no spare any more
    desktop = DesktopFactory(world=alice, template=template, host=host)
    claimed = DataKeyFactory(desktop=desktop, tenant=alice.tenant, host=host, spare_backing_path="/old/base.qcow2")
    # When the refill runs
    assert disk_keys.refill_spares(host_ids=[host.pk]) == 1
    # Then the stale spare is gone, file and key, and the desktop's key is untouched
    assert not stale_file.exists() and not DataKey.objects.filter(pk=stale.pk).exists()
    assert DataKey.objects.filter(pk=claimed.pk, desktop=desktop).exists()
    # And the bigger template keeps its two spares
    big = DataKey.objects.filter(host=host, desktop__isnull=True, spare_capacity_bytes=bigger.capacity_bytes)
    assert big.count() == 2
    # And the template has exactly two spares: the one it had, and a new one made for its base and size
    spares = [s for s in _spares(host) if s.spare_capacity_bytes == plan.capacity_bytes]
    assert spares[0].pk == ready.pk and len(spares) == 2
    made = spares[1]
    assert (made.spare_backing_path, made.spare_capacity_bytes) == (plan.backing_path, plan.capacity_bytes)
    assert (made.purpose, made.tenant_id, made.home_id) == ("disk", None, None)
    # ...a real LUKS overlay of that size on that base, in the host's pool, readable by its owner only
    path = Path(made.spare_path)
    assert path.parent == Path(plan.backing_path).parent and path.name == f"quetzal-spare-{made.uuid.hex}.qcow2"
    info = _luks(str(path))
    assert info["encrypted"] is True and info["virtual-size"] == plan.capacity_bytes
    assert info["backing-filename"] == plan.backing_path and (path.stat().st_mode & 0o777) == 0o600
    # ...which opens with its own key, and with no other
    assert _opens(path, disk_keys.passphrase_of(made)) and not _opens(path, disk_keys.passphrase_of(ready))
    # And a second run has nothing to do
    assert disk_keys.refill_spares(host_ids=[host.pk]) == 0
    assert len(_spares(host)) == 4


def test_it_refills_only_up_hosts_that_can_encrypt_and_only_for_images_they_hold(
    alice, image, template, tmp_path, monkeypatch, settings, caplog
):
    # Given one spare wanted; a host that can encrypt, holding the template's image, with its one spare made
    settings.DESKTOP_DISK_SPARES = 1
    full = _host_with_files(tmp_path, monkeypatch, image, "full")
    plan = desktop_disk_plan(host=full, image=image, capacity_bytes=template.disk_gib * GIB)
    DataKeyFactory(
        host=full, spare_path=plan.backing_path + ".spare", spare_backing_path=plan.backing_path,
        spare_capacity_bytes=plan.capacity_bytes,
    )  # fmt: skip
    # a host that can encrypt but is down, and one whose copy of the image is not ready yet,
    down = _host_with_files(tmp_path, monkeypatch, image, "down")
    Host.objects.filter(pk=down.pk).update(state=HostState.DOWN)
    copying = _host_with_files(tmp_path, monkeypatch, image, "copying")
    copying.image_copies.update(state=CopyState.COPYING)
    # and a test-driver host that cannot encrypt at all
    plain = make_test_host(tmp_path, name="plain")
    place_image(plain, image)
    # When the refill runs over every host
    caplog.set_level(logging.WARNING)
    assert disk_keys.refill_spares() == 0
    # Then no host got a spare it should not have, and nothing went wrong
    for host in (down, copying, plain):
        assert _spares(host) == [], host.name
    assert len(_spares(full)) == 1 and caplog.text == ""
    # And a host that cannot encrypt never gets one, even when asked by name
    assert disk_keys.refill_spares(host_ids=[plain.pk]) == 0
    # And with encryption switched off, no host encrypts
    settings.DESKTOP_DISK_ENCRYPTION = False
    assert not disk_keys.encrypts_disks(full)


def test_it_keeps_refilling_other_hosts_when_one_host_fails(
    alice, image, template, tmp_path, monkeypatch, settings, caplog
):
    # Given one spare wanted and two hosts that can encrypt: the first has lost its base image file,
    # the second holds only a spare no template needs (its own copy of the image is not ready)
    settings.DESKTOP_DISK_SPARES = 1
    broken = _host_with_files(tmp_path, monkeypatch, image, "broken")
    plain = make_test_host(tmp_path, name="plain")  # cannot encrypt: skipped, and the refill goes on
    other = _host_with_files(tmp_path, monkeypatch, image, "other")
    Path(desktop_disk_plan(host=broken, image=image, capacity_bytes=GIB).backing_path).unlink()
    other.image_copies.update(state=CopyState.FAILED)
    stale_file = tmp_path / "other" / "stale.qcow2"
    stale_file.write_bytes(b"old")
    DataKeyFactory(host=other, spare_path=str(stale_file), spare_backing_path="/old/base.qcow2")
    assert broken.pk < other.pk
    # When the refill runs over both
    caplog.set_level(logging.WARNING)
    made = disk_keys.refill_spares(host_ids=[broken.pk, plain.pk, other.pk])
    # Then the broken host has no spare (no key row for a file that is not there) and the log names it,
    # while the other host was still tidied
    assert made == 0 and _spares(broken) == []
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith("could not make spare disks on broken: qemu-img create failed: ")
    assert _spares(other) == [] and not stale_file.exists()


def test_it_has_the_next_spare_made_on_the_host_whose_spare_a_start_took(
    alice, image, template, tmp_path, monkeypatch, settings, work
):
    # Given one spare wanted, and a host that can encrypt with its one spare ready
    settings.DESKTOP_DISK_SPARES = 1
    host = _host_with_files(tmp_path, monkeypatch, image, "pool")
    plan = desktop_disk_plan(host=host, image=image, capacity_bytes=template.disk_gib * GIB)
    spare = DataKeyFactory(
        host=host, spare_path=plan.backing_path + ".spare", spare_backing_path=plan.backing_path,
        spare_capacity_bytes=plan.capacity_bytes,
    )  # fmt: skip
    # When a start takes it (the background refill runs as the start commits)
    desktop = DesktopFactory(world=alice, template=template, host=host)
    with work():
        key, _ = disk_keys.claim_for(desktop=desktop, host=host, plan=plan)
    # Then the host has a new spare for the next start
    assert key.pk == spare.pk
    (made,) = _spares(host)
    assert made.pk != spare.pk and Path(made.spare_path).exists()
