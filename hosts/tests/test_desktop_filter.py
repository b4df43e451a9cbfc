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


def _table(spec) -> list[tuple]:
    return [
        (r.action, r.direction, r.priority, r.protocol, r.dst, r.src, r.dst_ports, r.src_ports, r.stateful)
        for r in spec.rules
    ]


def test_it_is_exactly_this_filter_rule_by_rule(lease):
    # The whole firewall of a desktop whose tenant lets its desktops meet, denies what is not allowed, and
    # allows HTTPS to one network: (action, direction, priority, protocol, to, from, to ports, from ports, stateful)
    egress = [EgressRule(action="allow", cidr="192.0.2.0/24", protocol="tcp", port_start=443)]
    spec = desktop_filter_spec(lease, egress=egress, allow_all_outbound=False, allow_intra_tenant=True)
    gateway, subnet = "10.200.3.1/32", "10.200.3.0/24"
    everything_but_the_gateway = [
        "10.200.0.0/23", "10.200.2.0/24", "10.200.3.0/32", "10.200.3.2/31", "10.200.3.4/30", "10.200.3.8/29",
        "10.200.3.16/28", "10.200.3.32/27", "10.200.3.64/26", "10.200.3.128/25", "10.200.4.0/22", "10.200.8.0/21",
        "10.200.16.0/20", "10.200.32.0/19", "10.200.64.0/18", "10.200.128.0/17",
    ]  # fmt: skip
    assert _table(spec) == [
        ("accept", "out", 100, "udp", None, None, (67, 67), (68, 68), False),
        ("accept", "in", 101, "udp", None, gateway, (68, 68), (67, 67), False),
        ("drop", "in", 102, "udp", None, None, None, (67, 67), True),
        ("drop", "out", 103, "udp", None, None, None, (67, 67), True),
        ("accept", "out", 110, "udp", gateway, None, (53, 53), None, True),
        ("accept", "out", 111, "tcp", gateway, None, (53, 53), None, True),
        ("drop", "out", 112, "tcp", gateway, None, None, None, True),
        ("drop", "out", 113, "udp", gateway, None, None, None, True),
        ("drop", "out", 120, "tcp", None, None, (16509, 16509), None, True),
        ("drop", "out", 121, "tcp", None, None, (16514, 16514), None, True),
        ("drop", "out", 122, "tcp", None, None, (5900, 5999), None, True),
        ("accept", "out", 123, "all", subnet, None, None, None, True),
        ("accept", "in", 124, "all", None, subnet, None, None, True),
        *[
            ("drop", "out", 125 + i, "all", net, None, None, None, True)
            for i, net in enumerate(everything_but_the_gateway)
        ],
        ("drop", "out", 141, "all", "169.254.0.0/16", None, None, None, True),
        ("drop", "out", 142, "all", "192.0.2.10/32", None, None, None, True),
        ("accept", "out", 200, "tcp", "192.0.2.0/24", None, (443, 443), None, True),
        ("drop", "out", 995, "all", None, None, None, None, True),
        ("drop", "inout", 1000, "all", None, None, None, None, True),
    ]
    # Without the neighbours' rule the range's drops start where it would have been
    closed = desktop_filter_spec(lease, egress=egress, allow_all_outbound=False, allow_intra_tenant=False)
    assert [r[2] for r in _table(closed) if r[4] == "10.200.0.0/23"] == [123]


def test_it_keeps_a_tenants_rules_behind_the_protections_however_many_networks_are_blocked(lease, settings):
    # Given an operator blocking more networks than fit below the tenants' first priority
    settings.TENANT_NETWORK_BLOCKED = [f"172.16.{i}.0/24" for i in range(100)]
    egress = [EgressRule(action="allow", cidr="172.16.5.0/24")]
    spec = desktop_filter_spec(lease, egress=egress, allow_all_outbound=True, allow_intra_tenant=False)
    # Then the tenant's allow comes after every drop of a blocked network, so it cannot open one
    [allow] = [r for r in spec.rules if r.action == "accept" and r.dst == "172.16.5.0/24"]
    blocked = [r for r in spec.rules if r.action == "drop" and r.dst and r.dst.startswith("172.16.")]
    assert len(blocked) == 100 and allow.priority > max(r.priority for r in blocked)
    # ...right after the last protection (the management address), leaving no gap for anything else
    fixed = [r for r in spec.rules if r.priority < allow.priority]
    assert allow.priority == max(r.priority for r in fixed) + 1 and fixed[-1].dst == "192.0.2.10/32"


def test_it_refuses_more_rules_than_a_filter_holds(lease):
    from quetzal.errors import ServiceError

    # 790 rules fit between the tenants' first priority (200) and the last one before the defaults (990)
    rule = EgressRule(action="deny", cidr="203.0.113.0/24")
    spec = desktop_filter_spec(lease, egress=[rule] * 790, allow_all_outbound=True, allow_intra_tenant=False)
    assert max(r.priority for r in spec.rules if r.dst == "203.0.113.0/24") == 989
    with pytest.raises(ServiceError, match=r"^Too many firewall rules for one desktop\.$") as refused:
        desktop_filter_spec(lease, egress=[rule] * 791, allow_all_outbound=True, allow_intra_tenant=False)
    assert refused.value.code == "too_many_rules"


@pytest.mark.parametrize("management", ["127.0.0.1", "host1.example.org"])
def test_it_adds_no_address_rule_for_a_loopback_or_named_management_address(lease, management):
    lease.network.host.console_address = management
    spec = desktop_filter_spec(lease, egress=[], allow_all_outbound=True, allow_intra_tenant=False)
    assert [net for net in _drops(spec) if net.prefixlen == 32] == [ipaddress.IPv4Network("10.200.3.0/32")]


def test_it_also_drops_a_network_made_under_an_earlier_range(lease, settings):
    # Given the operator moved the tenant range after this network was made
    settings.TENANT_NETWORK_RANGE = "10.50.0.0/16"
    spec = desktop_filter_spec(lease, egress=[], allow_all_outbound=True, allow_intra_tenant=False)
    drops = _drops(spec)
    # Then both the new range and the network's own subnet are closed, but for its gateway
    for probe in ("10.50.0.9", "10.200.3.2", "10.200.3.200"):
        assert any(ipaddress.IPv4Address(probe) in net for net in drops), probe
    assert not any(ipaddress.IPv4Address("10.200.3.1") in net for net in drops)
    assert not any(ipaddress.IPv4Address("10.200.4.1") in net for net in drops)
