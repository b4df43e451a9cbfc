"""Which key each disk, home and tenant gets, who loses which key on erasure, and what a rotation records."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from desktops.choices import DesktopKind, KeyPurpose
from desktops.models import DataKey, HomeDisk
from desktops.services import disk_keys
from desktops.tests.conftest import make_test_host
from desktops.tests.factories import DataKeyFactory, DesktopFactory, HomeDiskFactory
from hosts.services.images import desktop_disk_plan
from quetzal import kek
from tenants.models import AuditEvent


def _plan(host, template):
    return desktop_disk_plan(host=host, image=template.image, capacity_bytes=template.disk_gib * 1024**3)


def test_it_claims_only_a_spare_made_on_this_host_for_this_base_and_size(alice, host, template, tmp_path, caplog):
    # Given spares that do not fit: one on another host, one for another base, one of another size
    plan = _plan(host, template)
    fits = {"spare_backing_path": plan.backing_path, "spare_capacity_bytes": plan.capacity_bytes}
    elsewhere = make_test_host(tmp_path, name="elsewhere")
    DataKeyFactory(host=elsewhere, spare_path="/pool/a.qcow2", **fits)
    DataKeyFactory(host=host, spare_path="/pool/b.qcow2", **(fits | {"spare_backing_path": "/pool/old.qcow2"}))
    DataKeyFactory(host=host, spare_path="/pool/c.qcow2", **(fits | {"spare_capacity_bytes": 1}))
    spares = set(DataKey.objects.values_list("pk", flat=True))
    desktop = DesktopFactory(world=alice, template=template)
    # When the desktop's disk is provisioned on host
    caplog.set_level(logging.WARNING)
    key, spare_path = disk_keys.claim_for(desktop=desktop, host=host, plan=plan)
    # Then it gets a fresh key of its own (its disk is made during the start), its tenant's, on that host
    assert spare_path is None and key.pk not in spares
    assert (key.desktop_id, key.tenant_id, key.host_id, key.purpose) == (desktop.pk, alice.tenant.pk, host.pk, "disk")
    # ...which the log says, naming the host
    said = f"no spare encrypted disk on {host.name}: making one during the start (seconds)"
    assert [r.getMessage() for r in caplog.records] == [said]
    # And the spares that did not fit are still spares
    assert DataKey.objects.filter(pk__in=spares, desktop__isnull=True, tenant__isnull=True).count() == 3


def test_it_names_the_destroyed_key_when_a_disk_or_home_cannot_be_opened(alice, template):
    desktop = DesktopFactory(world=alice, template=template, disk_encrypted=True)
    key = DataKeyFactory(desktop=desktop, tenant=alice.tenant)
    assert disk_keys.disk_key_of(desktop) == key
    assert disk_keys.erase_desktop_key(desktop, why="disk removed") is True
    # Erasing again finds nothing to erase, and says nothing more in the tenant's log
    assert disk_keys.erase_desktop_key(desktop, why="disk removed") is False
    assert AuditEvent.objects.filter(action="desktop.keys_erase").count() == 1
    message = r"^This desktop's disk key was destroyed; its disk can no longer be opened\.$"
    with pytest.raises(disk_keys.KeyErased, match=message):
        disk_keys.secrets_for(desktop)
    with pytest.raises(disk_keys.KeyErased, match=message):
        disk_keys.disk_key_of(desktop)
    home = HomeDiskFactory(world=alice, encrypted=True)
    with pytest.raises(
        disk_keys.KeyErased, match=r"^This home disk's key was destroyed; its files can no longer be read\.$"
    ):
        disk_keys.home_key_of(home)


def test_it_keeps_a_moved_disks_key_with_the_disk_and_forgets_the_spare_it_was(alice, host, template, tmp_path):
    # Given two desktops' keys on host, the first made from a spare
    mine = DesktopFactory(world=alice, template=template, host=host)
    theirs = DesktopFactory(world=alice, template=template, host=host)
    key = DataKeyFactory(desktop=mine, tenant=alice.tenant, host=host, spare_path="/pool/spare.qcow2")
    other = DataKeyFactory(desktop=theirs, tenant=alice.tenant, host=host, spare_path="/pool/other.qcow2")
    # When the spare became its disk, and the desktop moved to another host
    disk_keys.disk_made(key)
    target = make_test_host(tmp_path, name="target")
    disk_keys.key_moved(mine, target)
    # Then its key names the new host and no spare file any more; the other desktop's key is as it was
    key.refresh_from_db()
    other.refresh_from_db()
    assert (key.host_id, key.spare_path) == (target.pk, "")
    assert (other.host_id, other.spare_path) == (host.pk, "/pool/other.qcow2")
    # And a retried provisioning does not try to rename a spare that is its disk already
    assert disk_keys.claim_for(desktop=mine, host=target, plan=_plan(host, template)) == (key, None)


def test_it_erases_exactly_the_deleted_persons_keys_and_logs_each_tenant_its_own(alice, bob, template):
    # Given a person with a pooled desktop and an encrypted home in each of two tenants, and a colleague's home key
    person = alice.member
    bob.tenant.memberships.create(user=person)
    desktops, homes = {}, {}
    for world in (alice, bob):
        desktop = DesktopFactory(tenant=world.tenant, user=person, kind=DesktopKind.POOLED, template=template)
        DataKeyFactory(desktop=desktop, tenant=world.tenant)
        home = HomeDiskFactory(tenant=world.tenant, user=person, encrypted=True)
        disk_keys.home_key_for(home)
        desktops[world.tenant.pk], homes[world.tenant.pk] = desktop.pk, home.pk
    colleague_home = disk_keys.home_key_for(HomeDiskFactory(world=alice, user=alice.admin, encrypted=True))
    # When the person's keys are erased (as deleting the person does)
    assert disk_keys.erase_person_keys(person) == 4
    # Then each tenant's log names that tenant's desktop and home, and nothing else
    for world in (alice, bob):
        event = AuditEvent.objects.get(action="desktop.keys_erase", tenant=world.tenant)
        assert event.data == {
            "desktops": [desktops[world.tenant.pk]],
            "homes": [homes[world.tenant.pk]],
            "why": "person deleted",
        }
    # And the colleague's home key is still there
    assert list(DataKey.objects.values_list("pk", flat=True)) == [colleague_home.pk]


def test_it_gives_a_home_its_own_key_even_among_desktop_disk_keys(alice, template):
    # Given desktop disk keys in the tenant (keys without a home)
    DataKeyFactory(desktop=DesktopFactory(world=alice, template=template), tenant=alice.tenant)
    DataKeyFactory(purpose=KeyPurpose.RECORDING, tenant=alice.tenant)
    # When a home's key is made
    home = HomeDiskFactory(world=alice)
    key = disk_keys.home_key_for(home)
    # Then it is that home's, and asked again it is the same one
    assert (key.purpose, key.home_id) == (KeyPurpose.HOME, home.pk)
    assert disk_keys.home_key_for(HomeDisk.objects.get(pk=home.pk)).pk == key.pk
    assert disk_keys.home_key_of(home).pk == key.pk


def _race(first, second):
    """first() in a transaction that commits a second later; second() meanwhile, which must wait for it."""
    began = threading.Event()
    results = {}

    def slow() -> None:
        try:
            with transaction.atomic():
                results["first"] = first()
                began.set()
                threading.Event().wait(1)
        finally:
            connection.close()

    worker = threading.Thread(target=slow)
    worker.start()
    assert began.wait(10)
    results["second"] = second()
    worker.join(10)
    return results["first"], results["second"]


@pytest.mark.django_db(transaction=True)
def test_it_makes_one_home_key_when_two_workers_make_it_at_once(alice, bob):
    # Given another home's key already there, and a home without one
    disk_keys.home_key_for(HomeDiskFactory(world=bob))
    home = HomeDiskFactory(world=alice)
    # When two workers ask for its key at once
    first, second = _race(lambda: disk_keys.home_key_for(home), lambda: disk_keys.home_key_for(home))
    # Then both got the same key, the home's
    assert first.pk == second.pk and second.home_id == home.pk
    assert disk_keys.data_key_of(first) == disk_keys.data_key_of(second)


@pytest.mark.django_db(transaction=True)
def test_it_makes_one_recording_key_when_two_sessions_make_it_at_once(alice, bob):
    # Given another tenant's recording key already there, and a disk key of alice's tenant
    theirs = disk_keys.tenant_recording_key(bob.tenant)
    DataKeyFactory(desktop=DesktopFactory(world=alice), tenant=alice.tenant)
    # When two sessions of alice's tenant record at once
    first, second = _race(
        lambda: disk_keys.tenant_recording_key(alice.tenant), lambda: disk_keys.tenant_recording_key(alice.tenant)
    )
    # Then both use one key, the tenant's own
    assert first == second != theirs
    assert DataKey.objects.filter(tenant=alice.tenant, purpose=KeyPurpose.RECORDING).count() == 1


def test_it_rotates_to_the_kek_it_is_given_and_records_when_and_from_which(alice, template, settings):
    # Given a key under the configured KEK, and a new KEK not configured yet
    old, new = kek.Kek(os.urandom(32)), kek.Kek(os.urandom(32))
    settings.QUETZAL_KEK = old.key
    row = DataKeyFactory(desktop=DesktopFactory(world=alice, template=template), tenant=alice.tenant)
    data_key = disk_keys.data_key_of(row)
    before = timezone.now()
    # When the keys are re-wrapped to the new KEK
    assert disk_keys.rotate_kek(old=old, new=new) == 1
    # Then the key is under the new KEK, opens to the same data key there, and says when it was re-wrapped
    row.refresh_from_db()
    assert row.kek_id == new.kek_id and row.rewrapped_at is not None and row.rewrapped_at >= before
    assert kek.unwrap(row.wrapped, context=row.context, kek_id=row.kek_id, keks=[new]) == data_key
    # And the log names both KEKs by fingerprint
    event = AuditEvent.objects.get(action="keys.rotate")
    assert event.data == {"old_kek": old.kek_id, "new_kek": new.kek_id, "keys": 1}
