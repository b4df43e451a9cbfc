"""A live move that fails leaves the desktop as it was: destination network, disk and claim undone.

libvirt's test driver cannot migrate, which makes it the failing move: everything up to the migration itself
(claim, disk, seed, the tenant network held on the destination) is done for real first. The moves that
succeed run between real hosts (tests/test_multihost_move.py).
"""

from __future__ import annotations

from desktops.choices import DesktopState, OperationStatus
from desktops.models import Desktop
from desktops.services import spec
from desktops.services.moves import request_move
from desktops.services.requests import request_create
from desktops.tests.conftest import make_test_host, place_image
from hosts.hypervisor import get_hypervisor
from hosts.models import Allocation, Host, NetworkLease, TenantNetwork


def _quetzal_networks(host: Host) -> list[str]:
    names = get_hypervisor(host.uri).connection.run(lambda conn: [n.name() for n in conn.listAllNetworks(0)])
    return [name for name in names if name.startswith("quetzal-")]


def _running_desktop(world, template, work) -> Desktop:
    with work():
        desktop, _ = request_create(tenant=world.tenant, user=world.member, template=template)
    desktop = Desktop.objects.get(pk=desktop.pk)
    assert desktop.state == DesktopState.RUNNING
    return desktop


def test_it_undoes_the_destination_side_when_the_migration_fails(alice, host, image, template, work, tmp_path):
    # Given alice's running desktop on its tenant network on the first host, and a second host with the image
    desktop = _running_desktop(alice, template, work)
    lease = NetworkLease.objects.select_related("network").get(desktop_id=desktop.pk)
    second = make_test_host(tmp_path, name="second")
    place_image(second, image)
    # When it is moved there and the migration itself fails
    with work():
        operation = request_move(desktop=desktop, actor=alice.admin, host=second)
    operation.refresh_from_db()
    assert operation.status == OperationStatus.FAILED and "Migration" in operation.error, operation.error
    # (it failed at the migration itself: everything before it was done)
    assert [s["step"] for s in operation.steps][-2:] == ["preparing second", "moving to second"]
    # Then it still runs on the first host, with its claim there and none on the second
    desktop.refresh_from_db()
    assert (desktop.host_id, desktop.state) == (host.pk, DesktopState.RUNNING)
    assert get_hypervisor(host.uri).state(desktop.domain_name).is_active
    assert Allocation.objects.get(desktop_id=desktop.pk).host_id == host.pk
    second.refresh_from_db()
    assert (second.allocated_vcpus, second.allocated_memory_mib) == (0, 0)
    # And its lease is as it was, while the network made for it on the second host is gone, row and libvirt side
    row = NetworkLease.objects.get(desktop_id=desktop.pk)
    assert (row.network_id, row.ip, row.mac, row.moving_to_id) == (lease.network_id, lease.ip, lease.mac, None)
    assert not TenantNetwork.objects.filter(host=second).exists()
    assert _quetzal_networks(second) == []
    assert _quetzal_networks(host) == [lease.network.name]
    # And the disk and seed made on the second host for it are deleted
    hv2 = get_hypervisor(second.uri)
    for volume in (spec.disk_volume_name(desktop), spec.seed_volume_name(desktop)):
        assert not hv2.volume_exists(second.storage_pool, volume)
        assert get_hypervisor(host.uri).volume_exists(host.storage_pool, volume)


def test_it_moves_an_encrypted_desktop_only_where_its_disk_can_go(alice, host, image, template, work, tmp_path):
    # Given a running desktop whose disk is encrypted, and a second host that cannot run qemu-img on its disks
    desktop = _running_desktop(alice, template, work)
    Desktop.objects.filter(pk=desktop.pk).update(disk_encrypted=True)
    second = make_test_host(tmp_path, name="second")
    place_image(second, image)
    assert not get_hypervisor(second.uri).supports_disk_encryption
    # When it is moved there, then the move is refused naming why, before anything is made there
    with work():
        operation = request_move(desktop=desktop, actor=alice.admin, host=second)
    operation.refresh_from_db()
    assert (operation.status, operation.error_code) == (OperationStatus.FAILED, "not_movable")
    assert "encrypted" in operation.error
    assert Allocation.objects.get(desktop_id=desktop.pk).host_id == host.pk
    assert not TenantNetwork.objects.filter(host=second).exists()
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.RUNNING
