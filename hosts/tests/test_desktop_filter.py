"""The per-desktop filter: anti-spoofing, DHCP from the gateway, no neighbours or hosts, then the egress rules."""

from __future__ import annotations

import ipaddress

import pytest
from lxml import etree

from hosts.models import NetworkLease, TenantNetwork
from hosts.services.networks import HYPERVISOR_PORTS, EgressRule, desktop_filter_spec
from hosts.tests.factories import HostFactory


@pytest.fixture
def lease(db, alice, settings) -> NetworkLease:
    settings.TENANT_NETWORK_RANGE = "10.200.0.0/16"
    settings.TENANT_NETWORK_BLOCKED = ["169.254.0.0/16"]
    host = HostFactory(console_address="192.0.2.10")
    network = TenantNetwork.objects.create(
        tenant=alice.tenant, host=host, name="quetzal-f00", bridge="qzf00", subnet="10.200.3.0/24", subnet_index=3
    )
    return NetworkLease.objects.create(network=network, desktop_id=9, mac="52:54:00:00:00:09", ip="10.200.3.9")


def _drops(spec) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(r.dst) for r in spec.rules if r.action == "drop" and r.protocol == "all" and r.dst]


def test_it_pins_the_desktop_to_its_own_mac_and_ip(lease):
    spec = desktop_filter_spec(lease, egress=[], allow_all_outbound=True, allow_intra_tenant=False)
    assert spec.name == "quetzal-f00-d9"
    [ref] = spec.refs
    assert ref.filter == "clean-traffic" and ref.parameters == (("IP", "10.200.3.9"),)


def test_it_takes_dhcp_answers_from_the_gateway_only(lease):
    rules = desktop_filter_spec(lease, egress=[], allow_all_outbound=True, allow_intra_tenant=False).rules
    answers = [r for r in rules if r.direction == "in" and r.protocol == "udp" and r.src_ports == (67, 67)]
    assert [(r.action, r.src) for r in answers] == [("accept", "10.200.3.1/32"), ("drop", None)]
    assert any(r.action == "drop" and r.direction == "out" and r.src_ports == (67, 67) for r in rules)


def test_it_drops_the_whole_tenant_range_and_the_host_but_the_gateway(lease):
    spec = desktop_filter_spec(lease, egress=[], allow_all_outbound=True, allow_intra_tenant=False)
    drops = _drops(spec)
    gateway = ipaddress.IPv4Address("10.200.3.1")
    # Every address of the range but the gateway is dropped: neighbours, other tenants, their gateways
    for probe in ("10.200.3.2", "10.200.3.9", "10.200.3.255", "10.200.0.1", "10.200.200.7"):
        assert any(ipaddress.IPv4Address(probe) in net for net in drops), probe
    assert not any(gateway in net for net in drops)
    # And the management address and link-local metadata services
    assert ipaddress.IPv4Network("192.0.2.10/32") in drops
    assert ipaddress.IPv4Network("169.254.0.0/16") in drops
    # And the gateway answers DNS only among TCP/UDP; libvirt's and the VNC ports are closed everywhere
    to_gateway = [(r.action, r.protocol, r.dst_ports) for r in spec.rules if r.dst == "10.200.3.1/32"]
    assert to_gateway == [
        ("accept", "udp", (53, 53)),
        ("accept", "tcp", (53, 53)),
        ("drop", "tcp", None),
        ("drop", "udp", None),
    ]
    closed = {r.dst_ports for r in spec.rules if r.action == "drop" and r.protocol == "tcp" and r.dst is None}
    assert set(HYPERVISOR_PORTS) <= closed


def test_it_lets_desktops_of_a_tenant_meet_only_when_its_policy_says_so(lease):
    closed = desktop_filter_spec(lease, egress=[], allow_all_outbound=True, allow_intra_tenant=False)
    open_ = desktop_filter_spec(lease, egress=[], allow_all_outbound=True, allow_intra_tenant=True)
    subnet = "10.200.3.0/24"
    accepts = [r for r in open_.rules if r.action == "accept" and subnet in (r.dst, r.src)]
    assert not [r for r in closed.rules if r.action == "accept" and subnet in (r.dst, r.src)]
    # Out to the neighbours and in from them, before the range's drops and the final drop, so they win
    assert {(r.direction, r.dst, r.src) for r in accepts} == {("out", subnet, None), ("in", None, subnet)}
    assert max(r.priority for r in accepts) < min(r.priority for r in _drop_rules(open_))


def _drop_rules(spec):
    return [r for r in spec.rules if r.action == "drop" and r.protocol == "all" and r.dst]


@pytest.mark.parametrize(("allow_all", "last"), [(True, "accept"), (False, "drop")])
def test_it_applies_the_egress_rules_in_order_then_the_default(lease, allow_all, last):
    egress = [
        EgressRule(action="deny", cidr="203.0.113.0/24", protocol="tcp", port_start=25),
        EgressRule(action="allow", cidr="0.0.0.0/0", protocol="tcp", port_start=80, port_end=443),
        EgressRule(action="deny", cidr="198.51.100.7/32", protocol="icmp"),
    ]
    spec = desktop_filter_spec(lease, egress=egress, allow_all_outbound=allow_all, allow_intra_tenant=False)
    rules = sorted(spec.rules, key=lambda r: r.priority)
    tail = [r for r in rules if r.priority >= 200]
    assert [(r.action, r.protocol, r.dst, r.dst_ports) for r in tail[:3]] == [
        ("drop", "tcp", "203.0.113.0/24", (25, 25)),
        ("accept", "tcp", "0.0.0.0/0", (80, 443)),
        ("drop", "icmp", "198.51.100.7/32", None),
    ]
    # The fixed protections all come before any rule a tenant admin wrote
    assert max(r.priority for r in rules if r not in tail) < tail[0].priority
    assert (tail[-2].action, tail[-2].direction, tail[-2].dst) == (last, "out", None)
    assert (tail[-1].action, tail[-1].direction) == ("drop", "inout")
    root = etree.fromstring(spec.to_xml())
    assert len(root.findall("rule")) == len(spec.rules)
