"""Which subnet and address a desktop gets: never the network's, the gateway's or the broadcast address, never a
slice or subnet already on the host, and its own address kept on a move wherever that is possible."""

from __future__ import annotations

import pytest

from hosts.models import TenantNetwork
from hosts.services import networks
from hosts.tests.factories import HostFactory
from hosts.tests.libvirt_hosts import LARGE_URI, SMALL_URI, without_tenant_networks
from tests.factories import TenantFactory
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


def test_it_keeps_a_moving_desktops_address_even_when_a_lower_one_is_free_there(alice, hosts):
    first, second = hosts
    # Given two desktops on the first host (.2 and .3)
    networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=1)
    lease = networks.attach_desktop(tenant=alice.tenant, host=first, desktop_id=2)
    assert lease.ip == "10.200.0.3"
    # When the second moves to a host where alice has nothing yet, then it keeps .3 there, not the free .2
    held = networks.reserve_move(tenant=alice.tenant, host=second, desktop_id=2)
    assert held is not None and (held.network.subnet, held.ip) == ("10.200.0.0/24", "10.200.0.3")


def _network(**fields) -> TenantNetwork:
    return TenantNetwork(
        **{"name": "quetzal-x", "bridge": "qzx", "subnet": "10.200.9.0/29", "subnet_index": 9, **fields}
    )


@pytest.mark.parametrize(
    ("wanted", "given"),
    [
        ("10.200.9.5", "10.200.9.5"),  # free: kept
        ("10.200.9.3", "10.200.9.2"),  # taken: the lowest free one
        ("10.200.9.0", "10.200.9.2"),  # the network's own address
        ("10.200.9.1", "10.200.9.2"),  # the gateway
        ("10.200.9.7", "10.200.9.2"),  # the broadcast address
        ("10.200.8.5", "10.200.9.2"),  # another subnet's address
        (None, "10.200.9.2"),
    ],
)
def test_it_hands_out_only_a_desktops_own_kind_of_address(wanted, given):
    assert networks._free_ip(_network(), {"10.200.9.3"}, wanted=wanted) == given


def test_it_says_when_a_subnet_has_no_address_left():
    # A /29 holds six: the gateway and five desktops
    used = {f"10.200.9.{n}" for n in range(2, 7)}
    with pytest.raises(networks.NetworkRangeFull) as full:
        networks._free_ip(_network(), used, wanted="10.200.9.6")
    assert str(full.value) == "No address is free in 10.200.9.0/29; use a larger QUETZAL_TENANT_SUBNET_PREFIX."
    assert full.value.code == "network_range_full"


def test_it_never_carves_a_slice_the_host_has_or_one_overlapping_a_network_there(hosts, settings):
    first, second = hosts
    settings.TENANT_NETWORK_RANGE = "10.200.0.0/22"  # four slices
    a, b, c = TenantFactory(), TenantFactory(), TenantFactory()
    # Given a's network on both hosts (slice 0), b's on the first (slice 1)...
    networks.attach_desktop(tenant=a, host=first, desktop_id=1)
    networks.attach_desktop(tenant=a, host=second, desktop_id=2)
    networks.attach_desktop(tenant=b, host=first, desktop_id=3)
    # ...and on the second host a row made under an earlier range: slice 7 then, overlapping slice 2 now
    TenantNetwork.objects.create(tenant=c, host=second, name="quetzal-old", bridge="qzold", subnet="10.200.2.0/24",
                                 subnet_index=7)  # fmt: skip
    # When b's first desktop lands on the second host, b prefers its own slice 1, which is free there
    assert networks.attach_desktop(tenant=b, host=second, desktop_id=4).network.subnet == "10.200.1.0/24"
    # And a fourth tenant there gets neither a's slice 0, b's 1, nor the old row's 10.200.2.0/24
    d = TenantFactory()
    assert networks.attach_desktop(tenant=d, host=second, desktop_id=5).network.subnet == "10.200.3.0/24"
    # And a fifth finds no slice left, and is told so
    with pytest.raises(networks.NetworkRangeFull):
        networks.attach_desktop(tenant=TenantFactory(), host=second, desktop_id=6)


def test_it_isolates_a_networks_ports_unless_its_tenant_lets_desktops_meet(hosts):
    first, _ = hosts
    tenant = TenantFactory(allow_intra_tenant_traffic=False)
    network = networks.attach_desktop(tenant=tenant, host=first, desktop_id=1).network
    assert networks.network_spec(network).isolated_ports is True
    tenant.allow_intra_tenant_traffic = True
    tenant.save()
    network.refresh_from_db()
    assert networks.network_spec(TenantNetwork.objects.get(pk=network.pk)).isolated_ports is False
