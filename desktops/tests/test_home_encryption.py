"""Encrypted home disks: a key of their own under the KEK, LUKS at rest while the file manager works, the key handed
to QEMU with the disk, erased with the person; and the home following its desktop on a live move.

The file manager runs on real LUKS images through qemu-storage-daemon (no guest); the move's steps run on libvirt
test-driver hosts (the migration itself needs real hosts: tests/test_multihost_scaleout.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from desktops.choices import DesktopState, KeyPurpose
from desktops.models import DataKey, Desktop, HomeDisk
from desktops.services import disk_keys, homes
from desktops.tests.conftest import make_test_host
from desktops.tests.factories import DataKeyFactory, DesktopFactory, HomeDiskFactory, encrypted_home
from hosts.hypervisor import get_hypervisor
from quetzal.celery import app as celery_app
from quetzal.errors import ServiceError
from tenants.models import AuditEvent
from tests.fixtures import api_client

pytestmark = pytest.mark.django_db

MARKER = b"qz-home-at-rest-" + os.urandom(6).hex().encode()


@pytest.fixture
def eager(settings, tmp_path):
    settings.HOME_SPOOL_DIR = tmp_path / "spool"
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _upload(client, path: str, data: bytes) -> dict:
    begun = client.post("/api/v1/files/uploads/", {"path": path, "size": len(data)}, format="json").json()
    put = client.generic(
        "PUT", f"/api/v1/files/uploads/{begun['id']}/?offset=0", data, content_type="application/octet-stream"
    )
    assert put.status_code == 200, put.json()
    finished = client.post(f"/api/v1/files/uploads/{begun['id']}/finish/")
    assert finished.status_code == 201, finished.json()
    return finished.json()


def test_it_serves_an_encrypted_home_while_keeping_it_encrypted_at_rest(alice, bob, eager):
    # Given alice's member's encrypted home (no desktop has it)
    home = encrypted_home(world=alice)
    client = api_client(alice.member, alice.tenant)
    # When a file is uploaded, listed and downloaded through the file manager
    assert _upload(client, "diary.txt", MARKER * 100)["via"] == "host"
    listing = client.get("/api/v1/files/").json()
    assert [e["name"] for e in listing["entries"]] == ["diary.txt"] and listing["via"] == "host"
    download = client.get("/api/v1/files/download/", {"path": "diary.txt"})
    # Then the same bytes come back, and they are nowhere in the image file
    assert b"".join(download.streaming_content) == MARKER * 100
    assert MARKER not in Path(home.volume_path).read_bytes()
    # And another tenant's person, with an encrypted home of their own, sees theirs (empty), opened with its own key
    encrypted_home(world=bob)
    theirs = api_client(bob.member, bob.tenant).get("/api/v1/files/")
    assert theirs.status_code == 200 and theirs.json()["entries"] == []


def test_it_refuses_files_of_a_home_whose_key_was_destroyed(alice, eager):
    # Given an encrypted home whose key was erased (crypto-erase)
    home = encrypted_home(world=alice)
    DataKey.objects.filter(home=home).delete()
    # When its person opens the file manager
    response = api_client(alice.member, alice.tenant).get("/api/v1/files/")
    # Then it is refused with the stable code, not a 500, and the image was never opened
    assert response.status_code == 409 and response.json()["code"] == "disk_key_erased"


def test_it_gives_each_home_one_key_of_its_own(alice, bob):
    # Given two homes of two tenants
    mine, theirs = HomeDiskFactory(world=alice), HomeDiskFactory(world=bob)
    # When their keys are asked for, twice for one of them
    key = disk_keys.home_key_for(mine)
    assert disk_keys.home_key_for(HomeDisk.objects.get(pk=mine.pk)) == key
    other = disk_keys.home_key_for(theirs)
    # Then each home has one key, of its tenant, bound to its own row, and the keys differ
    assert key.purpose == KeyPurpose.HOME and key.tenant_id == alice.tenant.pk and key.desktop_id is None
    assert key.context == f"home:{key.uuid}"
    assert disk_keys.data_key_of(key) != disk_keys.data_key_of(other)
    assert DataKey.objects.filter(purpose=KeyPurpose.HOME).count() == 2
    # And the database refuses a home key without a home, or a desktop key pointing at a home
    with pytest.raises(IntegrityError), transaction.atomic():
        DataKeyFactory(purpose=KeyPurpose.HOME, tenant=alice.tenant)
    with pytest.raises(IntegrityError), transaction.atomic():
        DataKeyFactory(purpose=KeyPurpose.DISK, home=HomeDiskFactory(world=alice, user=alice.admin))


def test_it_hands_the_plugged_in_homes_key_to_qemu_with_the_desktop(alice):
    # Given a desktop and its person's encrypted home (key only: no image needed to check what QEMU is given)
    desktop = DesktopFactory(world=alice)
    home = HomeDiskFactory(world=alice, encrypted=True, volume_name="qz-home.qcow2", volume_path="/pool/qz-home.qcow2")
    key = disk_keys.home_key_for(home)
    # Then while it is not plugged in, starting the desktop needs no home key
    assert str(key.uuid) not in disk_keys.secrets_for(desktop)
    # When it is plugged in, waking (or moving) the desktop gets it, with the passphrase of that key
    assert homes.claim(home, desktop)
    assert disk_keys.secrets_for(desktop) == {str(key.uuid): disk_keys.passphrase_of(key)}
    # And the hot-plug carries it as a LUKS qcow2 naming that secret, found by serial
    disk, secrets = homes._disk_of(HomeDisk.objects.get(pk=home.pk))
    element = disk.to_element()
    assert element.find("driver").get("type") == "qcow2" and element.findtext("serial") == home.serial
    assert element.find("source/encryption/secret").get("uuid") == str(key.uuid)
    assert secrets == {str(key.uuid): disk_keys.passphrase_of(key)}
    # And a plain home is a raw disk with no secret
    plain = HomeDiskFactory(world=alice, user=alice.admin)
    assert homes._disk_of(plain)[0].driver_type == "raw" and homes._disk_of(plain)[1] == {}


def test_it_erases_a_deleted_persons_home_key_and_says_so(alice):
    # Given a person with an encrypted home in the tenant
    home = HomeDiskFactory(world=alice, encrypted=True)
    disk_keys.home_key_for(home)
    # When the person is deleted
    alice.member.delete()
    # Then the key is gone (the image is noise from now on) and the tenant's log says which home
    assert not DataKey.objects.filter(purpose=KeyPurpose.HOME).exists()
    event = AuditEvent.objects.get(action="desktop.keys_erase", tenant=alice.tenant)
    assert event.data["homes"] == [home.pk] and event.data["why"] == "person deleted"


def test_it_rotates_home_keys_with_the_others(alice, settings, monkeypatch):
    import base64

    from django.core.management import call_command

    from quetzal import kek

    # Given a home key under the old KEK
    old, new = os.urandom(32), os.urandom(32)
    settings.QUETZAL_KEK = old
    key = disk_keys.home_key_for(HomeDiskFactory(world=alice))
    before = disk_keys.data_key_of(key)
    # When the KEK is rotated
    settings.QUETZAL_KEK = new
    monkeypatch.setenv("QUETZAL_OLD_KEK", base64.b64encode(old).decode())
    call_command("rotate_kek", stdout=open(os.devnull, "w"))  # noqa: SIM115
    # Then the home's key is under the new KEK and opens to the same passphrase (the image needs nothing)
    rotated = DataKey.objects.get(pk=key.pk)
    assert rotated.kek_id == kek.Kek(new).kek_id and disk_keys.data_key_of(rotated) == before


# --- the home follows its desktop on a live move ---------------------------------------------------


@pytest.fixture
def two_hosts(tmp_path):
    return make_test_host(tmp_path, name="source"), make_test_host(tmp_path, name="target")


def _plugged_home(world, hosts) -> tuple[Desktop, HomeDisk]:
    source, _ = hosts
    desktop = DesktopFactory(world=world, host=source, state=DesktopState.RUNNING)
    hv = get_hypervisor(source.uri)
    home = HomeDiskFactory(world=world, host=source, volume_name="qz-home-t1-u1.img", volume_path="")
    path = hv.volume_create(source.storage_pool, home.volume_name, home.size_bytes, fmt="raw")
    HomeDisk.objects.filter(pk=home.pk).update(volume_path=path, attached_to=desktop)
    return desktop, HomeDisk.objects.get(pk=home.pk)


def test_it_moves_the_plugged_in_home_with_its_desktop(alice, two_hosts):
    source, target = two_hosts
    desktop, home = _plugged_home(alice, two_hosts)
    # When a move prepares the target: an empty raw volume of the home's size at the same path waits there
    move = homes.prepare_move(desktop, source=source, target=target)
    target_hv, source_hv = get_hypervisor(target.uri), get_hypervisor(source.uri)
    assert move is not None and move.path == home.volume_path
    assert target_hv.volume_capacity(target.storage_pool, home.volume_name) == home.size_bytes
    # When the migration succeeded: the home's row follows the desktop, and the source's stale copy goes
    homes.finish_move(move, target=target)
    homes.drop_source_copy(move, source=source)
    moved = HomeDisk.objects.get(pk=home.pk)
    assert moved.host_id == target.pk and moved.attached_to_id == desktop.pk
    assert not source_hv.volume_exists(source.storage_pool, home.volume_name)
    # And the person's next desktop is placed where the home now is
    assert homes.home_host_id(desktop) == target.pk


def test_it_leaves_the_home_on_the_source_when_the_move_fails(alice, two_hosts):
    source, target = two_hosts
    desktop, home = _plugged_home(alice, two_hosts)
    move = homes.prepare_move(desktop, source=source, target=target)
    # When the migration failed
    homes.abandon_move(move, target=target)
    # Then the target's empty copy is gone and the home is where it was, untouched
    assert not get_hypervisor(target.uri).volume_exists(target.storage_pool, home.volume_name)
    assert get_hypervisor(source.uri).volume_exists(source.storage_pool, home.volume_name)
    assert HomeDisk.objects.get(pk=home.pk).host_id == source.pk


def test_it_refuses_to_move_over_a_file_already_there_or_an_encrypted_home(alice, two_hosts):
    source, target = two_hosts
    desktop, home = _plugged_home(alice, two_hosts)
    # Given a file of the home's name already on the target (a crashed move's, or shared storage's own)
    target_hv = get_hypervisor(target.uri)
    target_hv.volume_create(target.storage_pool, home.volume_name, 4096, fmt="raw")
    # When a move is prepared, it is refused and the file is left alone
    with pytest.raises(ServiceError) as refused:
        homes.prepare_move(desktop, source=source, target=target)
    assert refused.value.code == "not_movable" and "already has a file" in refused.value.detail
    assert target_hv.volume_capacity(target.storage_pool, home.volume_name) == 4096
    # And an encrypted home is refused with a clear reason until encrypted moves exist
    HomeDisk.objects.filter(pk=home.pk).update(encrypted=True)
    with pytest.raises(ServiceError) as encrypted:
        homes.prepare_move(desktop, source=source, target=target)
    assert encrypted.value.code == "not_movable" and "encrypted home" in encrypted.value.detail


def test_it_has_nothing_to_move_for_a_desktop_without_its_home(alice, two_hosts):
    source, target = two_hosts
    desktop = DesktopFactory(world=alice, host=source, state=DesktopState.RUNNING)
    HomeDiskFactory(world=alice, host=source)  # the person's home, plugged into no desktop
    assert homes.prepare_move(desktop, source=source, target=target) is None
    homes.finish_move(None, target=target)
    homes.abandon_move(None, target=target)
    assert HomeDisk.objects.get(user=alice.member).host_id == source.pk


def test_it_makes_no_encrypted_home_here_for_a_host_on_another_machine(alice):
    """qemu-img and mkfs run on this worker's disk: for another machine's pool the home waits for a worker there."""
    from desktops.choices import HomeDiskState
    from hosts.models import Host

    # Given a host on another machine (its shell would reach it), and alice's member's encrypted home to make there
    host = Host.objects.create(name="far-away", uri="qemu+tcp://192.0.2.10/system", state="up")
    home = HomeDiskFactory(
        world=alice, host=host, encrypted=True, state=HomeDiskState.CREATING, volume_path="", volume_name="qz-far.qcow2"
    )
    # When it is made
    with pytest.raises(homes.HomeUnreachable, match="where this worker cannot see it"):
        homes.create_home_volume(home)
    # Then it is marked as waiting for a worker on that host, and nothing was written on this machine
    home.refresh_from_db()
    assert home.state == HomeDiskState.ERROR and "a worker must run there" in home.status_reason
    assert not Path("/var/lib/libvirt/images/qz-far.qcow2").exists()
    assert not Path("/var/lib/libvirt/images/qz-far.qcow2.part").exists()
