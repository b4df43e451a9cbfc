"""Networks on libvirt's test driver through the one driver interface; filters are a capability it lacks."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import pytest

from tests.services import require_module

require_module("libvirt", "libvirt-python (make libvirt-binding)")

from hosts.hypervisor import DhcpHost, FilterRule, NetworkSpec, NotSupported, NwFilterSpec  # noqa: E402
from hosts.hypervisor.libvirt_driver import LibvirtHypervisor  # noqa: E402
from hosts.tests.qemu_fixtures import qemu_hypervisor, qtest_prefix  # noqa: E402, F401 (fixtures)


@pytest.fixture
def hv() -> Iterator[LibvirtHypervisor]:
    hypervisor = LibvirtHypervisor("test:///default")
    yield hypervisor
    hypervisor.close()


def _spec(*hosts: DhcpHost) -> NetworkSpec:
    token = uuid.uuid4().hex[:8]
    return NetworkSpec(name=f"qtest-{token}", bridge=f"qt{token}", subnet="10.231.9.0/24", dhcp_hosts=hosts)


A = DhcpHost(mac="52:54:00:00:00:02", ip="10.231.9.2")
B = DhcpHost(mac="52:54:00:00:00:03", ip="10.231.9.3")


def test_it_makes_a_network_and_keeps_its_leases_in_line(hv):
    spec = _spec(A)
    try:
        # Given a network ensured twice (the second call is a no-op, not an error)
        hv.network_ensure(spec)
        hv.network_ensure(spec)
        assert hv.network_dhcp_hosts(spec.name) == (A,)
        # When a desktop joins and another leaves, then the running network's leases follow
        hv.network_ensure(NetworkSpec(**{**spec.__dict__, "dhcp_hosts": (A, B)}))
        assert set(hv.network_dhcp_hosts(spec.name) or ()) == {A, B}
        hv.network_ensure(NetworkSpec(**{**spec.__dict__, "dhcp_hosts": (B,)}))
        assert hv.network_dhcp_hosts(spec.name) == (B,)
    finally:
        hv.network_remove(spec.name)
    # And once removed it is gone, and removing it again is success
    assert hv.network_dhcp_hosts(spec.name) is None
    hv.network_remove(spec.name)


def test_it_says_the_test_driver_has_no_filters(hv):
    assert hv.supports_nwfilter is False
    with pytest.raises(NotSupported):
        hv.nwfilter_define(NwFilterSpec(name="qtest-filter"))


@pytest.mark.qemu
def test_it_defines_redefines_and_removes_filters_and_networks_on_libvirtd(qemu_hypervisor, qtest_prefix):  # noqa: F811
    name = f"{qtest_prefix}filter"
    # A subnet of its own: other test runs share this libvirtd.
    subnet = f"10.{random.randint(201, 250)}.250"
    lease = DhcpHost(mac=A.mac, ip=f"{subnet}.2")
    network = NetworkSpec(
        name=f"{qtest_prefix}net", bridge=f"qt{uuid.uuid4().hex[:8]}", subnet=f"{subnet}.0/24", dhcp_hosts=(lease,)
    )
    try:
        # Given a filter defined on a real libvirtd
        assert qemu_hypervisor.supports_nwfilter is True
        qemu_hypervisor.nwfilter_define(NwFilterSpec(name=name, rules=(FilterRule("drop", "out", 500, "icmp"),)))
        # When it is defined again with other rules (what a live firewall change does), then libvirt takes it
        qemu_hypervisor.nwfilter_define(NwFilterSpec(name=name, rules=(FilterRule("accept", "out", 500, "icmp"),)))
        assert qemu_hypervisor.nwfilter_exists(name)
        # And a network comes up with its leases and goes again
        qemu_hypervisor.network_ensure(network)
        assert qemu_hypervisor.network_dhcp_hosts(network.name) == (lease,)
    finally:
        qemu_hypervisor.nwfilter_remove(name)
        qemu_hypervisor.network_remove(network.name)
    # Then both are gone, and removing them again is success
    assert not qemu_hypervisor.nwfilter_exists(name)
    assert qemu_hypervisor.network_dhcp_hosts(network.name) is None
    qemu_hypervisor.nwfilter_remove(name)
    qemu_hypervisor.network_remove(network.name)
