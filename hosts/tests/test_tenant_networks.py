"""Tenant networks: one per tenant per host, subnets and addresses carved race-free, gone with the last desktop."""

from __future__ import annotations

import ipaddress
import threading

import pytest
from django.db import connection, connections

from hosts.hypervisor import NetworkSpec, get_hypervisor
from hosts.models import NetworkLease, TenantNetwork
from hosts.services import networks
from hosts.tests.factories import HostFactory
from hosts.tests.libvirt_hosts import LARGE_URI, SMALL_URI, without_tenant_networks
from tests.factories import TenantFactory
from tests.services import require, require_module

require_module("libvirt", "libvirt-python (make libvirt-binding)")


@pytest.fixture
def host(db):
    # A test-driver host of its own: its networks live in this process's connection to that URI.
    without_tenant_networks(SMALL_URI)
    return HostFactory(uri=SMALL_URI, console_address="127.0.0.1")


@pytest.fixture
def other_host(db):
    without_tenant_networks(LARGE_URI)
    return HostFactory(uri=LARGE_URI, console_address="192.0.2.50")


def _on_host(host, network: TenantNetwork):
    return get_hypervisor(host.uri).network_dhcp_hosts(network.name)


def test_it_gives_each_tenant_its_own_network_and_removes_it_with_the_last_desktop(alice, bob, host, settings):
    settings.TENANT_NETWORK_RANGE, settings.TENANT_SUBNET_PREFIX = "10.200.0.0/16", 24
    # Given two desktops of alice and one of bob placed on one host
    a1 = networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=101)
    a2 = networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=102)
    b1 = networks.attach_desktop(tenant=bob.tenant, host=host, desktop_id=103)
    # Then alice's share one network and bob's has another, with its own bridge and subnet
    assert a1.network_id == a2.network_id != b1.network_id
    net_a, net_b = a1.network, b1.network
    assert (net_a.subnet, net_b.subnet) == ("10.200.0.0/24", "10.200.1.0/24")
    assert net_a.bridge != net_b.bridge and len(net_a.bridge) <= 15
    # And addresses follow the gateway, each with its own MAC, all as static leases on the host
    assert (a1.ip, a2.ip, b1.ip) == ("10.200.0.2", "10.200.0.3", "10.200.1.2")
    assert a1.mac != a2.mac
    assert {(h.mac, h.ip) for h in _on_host(host, net_a)} == {(a1.mac, a1.ip), (a2.mac, a2.ip)}
    # And attaching again is idempotent
    assert networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=101).pk == a1.pk
    # When one of alice's desktops goes, then its lease goes and the network stays for the other
    networks.detach_desktop(desktop_id=101)
    assert {(h.mac, h.ip) for h in _on_host(host, net_a)} == {(a2.mac, a2.ip)}
    # When the last goes, then the network goes too: row and host side
    networks.detach_desktop(desktop_id=102)
    assert not TenantNetwork.objects.filter(pk=net_a.pk).exists()
    assert _on_host(host, net_a) is None
    assert _on_host(host, net_b) is not None
    networks.detach_desktop(desktop_id=102)  # already gone: nothing to do


def test_it_reuses_a_freed_subnet_and_the_lowest_free_address(alice, bob, host, settings):
    settings.TENANT_NETWORK_RANGE, settings.TENANT_SUBNET_PREFIX = "10.200.0.0/16", 24
    networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=1)
    networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=2)
    networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=3)
    networks.detach_desktop(desktop_id=2)
    # Given a hole at .3, when a new desktop comes, then it takes .3
    assert networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=4).ip == "10.200.0.3"
    # And bob, first on this host, takes the next subnet
    assert networks.attach_desktop(tenant=bob.tenant, host=host, desktop_id=5).network.subnet == "10.200.1.0/24"


def test_it_skips_a_subnet_another_network_on_the_host_already_has(alice, host, settings):
    settings.TENANT_NETWORK_RANGE, settings.TENANT_SUBNET_PREFIX = "10.200.0.0/16", 24
    # Given a host where someone else (another installation, the operator) runs a network on the range's first
    # subnet, unknown to our database
    hv = get_hypervisor(host.uri)
    theirs = NetworkSpec(name="lab-elsewhere", bridge="labelse0", subnet="10.200.0.0/24")
    hv.network_ensure(theirs)
    try:
        # When alice's first desktop arrives there
        lease = networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=1)
        # Then her network takes the next subnet (libvirt would refuse to start one on a routed subnet)
        assert lease.network.subnet == "10.200.1.0/24" and lease.ip == "10.200.1.2"
        assert _on_host(host, lease.network) is not None
    finally:
        hv.network_remove(theirs.name)


def test_it_refuses_a_tenant_when_the_range_is_full_and_leaves_nothing_behind(alice, bob, charlie, host, settings):
    settings.TENANT_NETWORK_RANGE, settings.TENANT_SUBNET_PREFIX = "10.200.0.0/23", 24
    networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=1)
    networks.attach_desktop(tenant=bob.tenant, host=host, desktop_id=2)
    with pytest.raises(networks.NetworkRangeFull) as refused:
        networks.attach_desktop(tenant=charlie.tenant, host=host, desktop_id=3)
    assert refused.value.code == "network_range_full" and "10.200.0.0/23" in refused.value.detail
    assert not TenantNetwork.objects.filter(tenant=charlie.tenant).exists()
    assert not NetworkLease.objects.filter(desktop_id=3).exists()


def test_it_moves_a_desktops_lease_with_it_to_another_host(alice, host, other_host, settings):
    settings.TENANT_NETWORK_RANGE, settings.TENANT_SUBNET_PREFIX = "10.200.0.0/16", 24
    first = networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=7)
    moved = networks.attach_desktop(tenant=alice.tenant, host=other_host, desktop_id=7)
    assert moved.network.host_id == other_host.pk
    assert not TenantNetwork.objects.filter(pk=first.network_id).exists()
    assert _on_host(host, first.network) is None


def _attach_all(jobs, errors: list) -> None:
    barrier = threading.Barrier(len(jobs))

    def run(tenant, host, desktop_id) -> None:
        try:
            barrier.wait()
            networks.attach_desktop(tenant=tenant, host=host, desktop_id=desktop_id)
        except Exception as error:  # the test reports any
            errors.append(repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an attach hung (deadlock?)"


@pytest.mark.django_db(transaction=True)
def test_it_carves_distinct_subnets_and_addresses_under_concurrent_first_desktops(settings):
    require(connection.vendor == "postgresql", "PostgreSQL")
    settings.TENANT_NETWORK_RANGE, settings.TENANT_SUBNET_PREFIX = "10.200.0.0/16", 24
    without_tenant_networks(SMALL_URI)
    host = HostFactory(uri=SMALL_URI)
    tenants = [TenantFactory() for _ in range(6)]
    # When every tenant's first three desktops arrive on the host at the same moment
    jobs = [(tenant, host, 1000 * t + d) for t, tenant in enumerate(tenants) for d in range(3)]
    errors: list = []
    _attach_all(jobs, errors)
    # Then nothing failed, each tenant has exactly one network, no two share a subnet or bridge
    assert errors == []
    nets = list(TenantNetwork.objects.filter(host=host))
    assert sorted(n.tenant_id for n in nets) == sorted(t.pk for t in tenants)
    assert len({n.subnet for n in nets}) == len({n.bridge for n in nets}) == len(tenants)
    # And every desktop has its own address inside its tenant's subnet
    for net in nets:
        ips = list(net.leases.values_list("ip", flat=True))
        assert len(ips) == len(set(ips)) == 3
        assert all(ipaddress.IPv4Address(ip) in net.network and ip != net.gateway for ip in ips)


def test_it_gives_a_tenant_the_same_slice_on_its_next_host_even_when_a_lower_one_is_free(
    alice, bob, host, other_host, settings
):
    settings.TENANT_NETWORK_RANGE, settings.TENANT_SUBNET_PREFIX = "10.200.0.0/16", 24
    # Given alice's and then bob's first desktops on one host (slices 0 and 1), and alice's gone again
    networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=201)
    bobs = networks.attach_desktop(tenant=bob.tenant, host=host, desktop_id=202)
    networks.detach_desktop(desktop_id=201)
    assert bobs.network.subnet == "10.200.1.0/24"
    # When bob's next desktop lands on another host, where every slice is free
    there = networks.attach_desktop(tenant=bob.tenant, host=other_host, desktop_id=203)
    # Then bob's network there is on the slice bob has already (a desktop moved live keeps its address),
    # not on the lowest free one
    assert there.network.subnet == "10.200.1.0/24" and there.network.subnet_index == 1
