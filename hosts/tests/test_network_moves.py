"""A desktop's lease during a live move: held on the destination, moved only on success, let go on failure.

Tenant subnets are carved so a tenant has the same one on every host where it can, so a moved desktop keeps
its address. libvirt's test driver keeps networks (not filters), one instance per host URI.
"""

from __future__ import annotations

import pytest

from hosts.hypervisor import DhcpHost, get_hypervisor
from hosts.models import NetworkLease, TenantNetwork
from hosts.services import networks
from hosts.tests.factories import HostFactory
from hosts.tests.libvirt_hosts import LARGE_URI, SMALL_URI, without_tenant_networks
from tests.services import require_module

require_module("libvirt", "libvirt-python (make libvirt-binding)")


@pytest.fixture
def hosts(db, settings):
    settings.TENANT_NETWORK_RANGE, settings.TENANT_SUBNET_PREFIX = "10.200.0.0/16", 24
    without_tenant_networks(SMALL_URI, LARGE_URI)
    return (
        HostFactory(uri=SMALL_URI, console_address="127.0.0.1"),
        HostFactory(uri=LARGE_URI, console_address="192.0.2.50"),
    )


def _dhcp(host, network: TenantNetwork) -> set[tuple[str, str]] | None:
    found = get_hypervisor(host.uri).network_dhcp_hosts(network.name)
    return None if found is None else {(h.mac, h.ip) for h in found}


def _subnet(tenant, host) -> str:
    return TenantNetwork.objects.get(tenant=tenant, host=host).subnet


def test_it_gives_a_tenant_the_same_subnet_on_every_host_and_others_their_own(alice, bob, charlie, hosts):
    first, second = hosts
    # Given bob first on the second host, alice first on the first
    networks.attach_desktop(tenant=bob.tenant, host=second, desktop_id=1)
    networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=2)
    # Then alice did not take bob's subnet, though it is free on the first host
    assert _subnet(bob.tenant, second) == "10.200.0.0/24"
    assert _subnet(alice.tenant, first) == "10.200.1.0/24"
    # When each comes to the other host, then each gets the subnet it has elsewhere
    networks.attach_desktop(tenant=alice.tenant, host=second, desktop_id=3)
    networks.attach_desktop(tenant=bob.tenant, host=first, desktop_id=4)
    assert _subnet(alice.tenant, second) == "10.200.1.0/24"
    assert _subnet(bob.tenant, first) == "10.200.0.0/24"
    # And a third tenant gets one nobody uses anywhere
    networks.attach_desktop(tenant=charlie.tenant, host=second, desktop_id=5)
    assert _subnet(charlie.tenant, second) == "10.200.2.0/24"


def test_it_falls_back_to_a_free_subnet_when_the_tenants_is_taken(alice, bob, charlie, hosts, settings):
    first, second = hosts
    settings.TENANT_NETWORK_RANGE = "10.200.0.0/23"  # two subnets only
    networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=1)
    networks.attach_desktop(tenant=bob.tenant, host=first, desktop_id=2)
    # Given charlie on the second host, in alice's subnet (every subnet is someone's already)
    networks.attach_desktop(tenant=charlie.tenant, host=second, desktop_id=3)
    assert _subnet(charlie.tenant, second) == _subnet(alice.tenant, first) == "10.200.0.0/24"
    # When alice comes to the second host, then she gets the one still free there
    networks.attach_desktop(tenant=alice.tenant, host=second, desktop_id=4)
    assert _subnet(alice.tenant, second) == "10.200.1.0/24"


def test_it_holds_the_address_on_the_destination_and_moves_the_lease_only_when_done(alice, hosts):
    first, second = hosts
    # Given alice's desktop on the first host
    lease = networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=7)
    source = lease.network
    # When its move to the second host is prepared
    held = networks.reserve_move(tenant=alice.tenant, host=second, desktop_id=7)
    # Then it is promised the same MAC and address there, in a network made for alice with its DHCP entry...
    assert held is not None and held.pk is None
    target = held.network
    assert target.host_id == second.pk and target.subnet == source.subnet
    assert (held.mac, held.ip) == (lease.mac, lease.ip)
    assert _dhcp(second, target) == {(lease.mac, lease.ip)}
    # ...while the lease row still names the first host's network, which is untouched
    row = NetworkLease.objects.get(desktop_id=7)
    assert (row.network_id, row.moving_to_id, row.moving_ip) == (source.pk, target.pk, lease.ip)
    assert _dhcp(first, source) == {(lease.mac, lease.ip)}
    # And a desktop of alice arriving on the second host meanwhile neither takes that address nor drops it
    other = networks.attach_desktop(tenant=alice.tenant, host=second, desktop_id=8)
    assert other.network_id == target.pk and other.ip != lease.ip and other.mac != lease.mac
    assert _dhcp(second, target) == {(lease.mac, lease.ip), (other.mac, other.ip)}
    # When the move is done
    networks.complete_move(desktop_id=7)
    # Then the lease is on the second host's network, and alice's network left the first host with it
    row = NetworkLease.objects.get(desktop_id=7)
    assert (row.network_id, row.ip, row.mac, row.moving_to_id, row.moving_ip) == (
        target.pk,
        lease.ip,
        lease.mac,
        None,
        None,
    )
    assert not TenantNetwork.objects.filter(pk=source.pk).exists()
    assert _dhcp(first, source) is None
    assert _dhcp(second, target) == {(lease.mac, lease.ip), (other.mac, other.ip)}
    # And a repeated completion (a retried task) changes nothing
    networks.complete_move(desktop_id=7)
    assert NetworkLease.objects.get(desktop_id=7).network_id == target.pk


def test_it_keeps_the_source_network_for_the_desktops_left_there(alice, hosts):
    first, second = hosts
    networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=7)
    stays = networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=8)
    networks.reserve_move(tenant=alice.tenant, host=second, desktop_id=7)
    networks.complete_move(desktop_id=7)
    # Then the first host keeps alice's network, with only the desktop that stayed in its DHCP
    assert _dhcp(first, stays.network) == {(stays.mac, stays.ip)}


def test_it_lets_go_of_the_destination_when_the_move_fails(alice, hosts):
    first, second = hosts
    lease = networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=7)
    held = networks.reserve_move(tenant=alice.tenant, host=second, desktop_id=7)
    assert held is not None
    # When the move failed
    networks.cancel_move(desktop_id=7)
    # Then the network made for it on the second host is gone (nothing else uses it), row and libvirt side
    assert not TenantNetwork.objects.filter(pk=held.network.pk).exists()
    assert _dhcp(second, held.network) is None
    # And the lease is as it was, on the first host, whose network still serves it
    row = NetworkLease.objects.get(desktop_id=7)
    assert (row.network_id, row.ip, row.moving_to_id, row.moving_ip) == (lease.network_id, lease.ip, None, None)
    assert _dhcp(first, lease.network) == {(lease.mac, lease.ip)}


def test_it_leaves_a_destination_network_in_use_and_only_drops_the_held_entry(alice, hosts):
    first, second = hosts
    there = networks.attach_desktop(tenant=alice.tenant, host=second, desktop_id=9)
    networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=7)
    held = networks.reserve_move(tenant=alice.tenant, host=second, desktop_id=7)
    assert held is not None and held.network.pk == there.network_id
    networks.cancel_move(desktop_id=7)
    assert _dhcp(second, there.network) == {(there.mac, there.ip)}


def test_it_gives_a_new_address_when_the_subnet_differs_or_the_address_is_taken(alice, bob, charlie, hosts, settings):
    first, second = hosts
    settings.TENANT_NETWORK_RANGE = "10.200.0.0/23"
    # Given alice's subnet on the first host taken by charlie on the second
    lease = networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=1)
    networks.attach_desktop(tenant=bob.tenant, host=first, desktop_id=2)
    networks.attach_desktop(tenant=charlie.tenant, host=second, desktop_id=3)
    # When her desktop moves there, then it gets an address in the subnet she has there, the same MAC
    held = networks.reserve_move(tenant=alice.tenant, host=second, desktop_id=1)
    assert held is not None and held.network.subnet == "10.200.1.0/24" != lease.network.subnet
    assert held.mac == lease.mac and held.ip == "10.200.1.2"


def test_it_refuses_a_move_when_the_mac_is_taken_there(alice, hosts):
    first, second = hosts
    there = networks.attach_desktop(tenant=alice.tenant, host=second, desktop_id=9)
    lease = networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=7)
    NetworkLease.objects.filter(pk=lease.pk).update(mac=there.mac)  # one chance in 16 million, made certain
    with pytest.raises(networks.MacTaken) as refused:
        networks.reserve_move(tenant=alice.tenant, host=second, desktop_id=7)
    assert refused.value.code == "not_movable" and there.mac in refused.value.detail
    assert NetworkLease.objects.get(pk=lease.pk).moving_to_id is None
    assert _dhcp(second, there.network) == {(there.mac, there.ip)}


def test_it_drops_a_half_done_move_when_the_desktop_is_removed(alice, hosts):
    first, second = hosts
    networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=7)
    held = networks.reserve_move(tenant=alice.tenant, host=second, desktop_id=7)
    assert held is not None
    # When a desktop whose move a crash left half-done is deleted, then nothing of it stays on either host
    networks.detach_desktop(desktop_id=7)
    assert not NetworkLease.objects.exists() and not TenantNetwork.objects.exists()
    assert _dhcp(second, held.network) is None


def test_it_describes_held_addresses_as_static_dhcp_hosts(alice, hosts):
    first, second = hosts
    lease = networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=7)
    held = networks.reserve_move(tenant=alice.tenant, host=second, desktop_id=7)
    assert held is not None
    spec = networks.network_spec(TenantNetwork.objects.get(pk=held.network.pk))
    assert spec.dhcp_hosts == (DhcpHost(mac=lease.mac, ip=lease.ip),)
