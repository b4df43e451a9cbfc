"""Typed network and nwfilter XML: what libvirt's schemas accept, and what the specs refuse."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from lxml import etree

from hosts.hypervisor import DhcpHost, FilterParameterRef, FilterRule, InterfaceSpec, NetworkSpec, NwFilterSpec
from hosts.tests.test_hypervisor_domain import assert_valid_domain_xml, make_spec, virt_xml_validate


def _validate(xml: str, kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}-{uuid.uuid4().hex}.xml"
    path.write_text(xml)
    result = subprocess.run([virt_xml_validate(), str(path), kind], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{xml}"


def _network(**overrides) -> NetworkSpec:
    fields = {
        "name": "quetzal-abc123",
        "bridge": "qzabc123",
        "subnet": "10.200.7.0/24",
        "dhcp_hosts": (DhcpHost(mac="52:54:00:AA:00:02", ip="10.200.7.2"),),
    }
    fields.update(overrides)
    return NetworkSpec(**fields)


def test_it_renders_a_nat_network_with_isolated_ports_and_only_static_leases(tmp_path):
    spec = _network()
    _validate(spec.to_xml(), "network", tmp_path)
    root = etree.fromstring(spec.to_xml())
    assert root.find("forward").get("mode") == "nat"
    assert root.find("bridge").get("name") == "qzabc123"
    assert root.find("port").get("isolated") == "yes"
    ip = root.find("ip")
    assert (ip.get("address"), ip.get("netmask")) == ("10.200.7.1", "255.255.255.0")
    # No <range>: dnsmasq answers only the MACs Quetzal leased
    assert ip.find("dhcp/range") is None
    assert [(h.get("mac"), h.get("ip")) for h in ip.iterfind("dhcp/host")] == [("52:54:00:aa:00:02", "10.200.7.2")]
    assert _network(isolated_ports=False).to_element().find("port") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"bridge": "a-bridge-name-too-long"},
        {"bridge": "Br0"},
        {"name": "has space"},
        {"subnet": "10.200.7.1/24"},
        {"subnet": "10.200.7.0/31"},
        {"dhcp_hosts": (DhcpHost(mac="52:54:00:00:00:02", ip="10.9.9.9"),)},
        {"dhcp_hosts": (DhcpHost(mac="52:54:00:00:00:02", ip="10.200.7.1"),)},
        {
            "dhcp_hosts": (
                DhcpHost(mac="52:54:00:00:00:02", ip="10.200.7.2"),
                DhcpHost(mac="52:54:00:00:00:02", ip="10.200.7.3"),
            )
        },
    ],
)
def test_it_refuses_a_bad_network(bad):
    with pytest.raises(ValueError):
        _network(**bad)


def test_it_renders_a_filter_libvirt_accepts(tmp_path):
    spec = NwFilterSpec(
        name="quetzal-abc123-d7",
        refs=(FilterParameterRef("clean-traffic", (("IP", "10.200.7.2"),)),),
        rules=(
            FilterRule("accept", "out", 100, "udp", src_ports=(68, 68), dst_ports=(67, 67), stateful=False),
            FilterRule("drop", "out", 140, "all", dst="10.200.0.0/16"),
            FilterRule("accept", "out", 200, "tcp", dst="192.0.2.0/24", dst_ports=(80, 443)),
            FilterRule("drop", "inout", 1000),
        ),
        uuid="0f0e5f1c-87a4-4b57-8b52-4b0a8d7b3f11",
    )
    _validate(spec.to_xml(), "nwfilter", tmp_path)
    root = etree.fromstring(spec.to_xml())
    ref = root.find("filterref")
    assert ref.get("filter") == "clean-traffic" and ref.find("parameter").get("value") == "10.200.7.2"
    rules = root.findall("rule")
    assert [r.get("priority") for r in rules] == ["100", "140", "200", "1000"]
    assert rules[0].get("statematch") == "false" and rules[1].get("statematch") is None
    assert dict(rules[1].find("all").attrib) == {"dstipaddr": "10.200.0.0", "dstipmask": "16"}
    assert dict(rules[2].find("tcp").attrib) == {
        "dstipaddr": "192.0.2.0",
        "dstipmask": "24",
        "dstportstart": "80",
        "dstportend": "443",
    }


@pytest.mark.parametrize(
    "build",
    [
        lambda: FilterRule("allow", "out", 1),  # type: ignore[arg-type]
        lambda: FilterRule("drop", "sideways", 1),  # type: ignore[arg-type]
        lambda: FilterRule("drop", "out", 1001),
        lambda: FilterRule("drop", "out", 1, "gre"),  # type: ignore[arg-type]
        lambda: FilterRule("drop", "out", 1, "icmp", dst_ports=(1, 2)),
        lambda: FilterRule("drop", "out", 1, "tcp", dst_ports=(0, 2)),
        lambda: FilterRule("drop", "out", 1, "tcp", dst_ports=(9, 2)),
        lambda: FilterRule("drop", "out", 1, dst="10.0.0.300/8"),
        lambda: FilterParameterRef("clean-traffic", (("ip", "x"),)),
        lambda: FilterParameterRef("clean-traffic", (("IP", "1.2.3.4'/>"),)),
        lambda: NwFilterSpec(name="no/slash"),
    ],
)
def test_it_refuses_a_bad_filter(build):
    with pytest.raises(ValueError):
        build()


def test_it_puts_the_interface_on_the_network_isolated_with_its_filter(tmp_path):
    iface = InterfaceSpec(network="quetzal-abc123", mac="52:54:00:aa:00:02", isolated=True, filter="quetzal-abc123-d7")
    xml = make_spec(interfaces=(iface,)).to_xml()
    assert_valid_domain_xml(xml, tmp_path)
    el = etree.fromstring(xml).find("devices/interface")
    assert el.find("source").get("network") == "quetzal-abc123"
    assert el.find("port").get("isolated") == "yes"
    assert el.find("filterref").get("filter") == "quetzal-abc123-d7"
    plain = etree.fromstring(make_spec(interfaces=(InterfaceSpec(network="x"),)).to_xml()).find("devices/interface")
    assert plain.find("port") is None and plain.find("filterref") is None


def test_it_answers_its_dns_domain_locally_and_can_be_a_network_without_nat(tmp_path):
    spec = _network(domain_name="desktops.internal", forward="none", isolated_ports=False)
    _validate(spec.to_xml(), "network", tmp_path)
    root = etree.fromstring(spec.to_xml())
    # Names under the domain are answered by the host's dnsmasq and never forwarded upstream
    assert dict(root.find("domain").attrib) == {"name": "desktops.internal", "localOnly": "yes"}
    # Without NAT the guests reach nothing beyond the bridge
    assert root.find("forward") is None
    assert dict(root.find("bridge").attrib) == {"name": "qzabc123", "stp": "on", "delay": "0"}
    assert _network().to_element().find("domain") is None


def test_it_matches_answers_from_the_gateway_by_source_address_and_ports():
    rule = FilterRule("accept", "in", 101, "udp", src="10.200.7.1", src_ports=(67, 67), dst_ports=(68, 68))
    match = rule.to_element().find("udp")
    assert (match.get("srcipaddr"), match.get("srcportstart"), match.get("dstportstart")) == ("10.200.7.1", "67", "68")
    assert match.get("dstipaddr") is None and match.get("srcportend") is None
    wide = FilterRule("drop", "in", 102, "all", src="10.200.0.0/16").to_element().find("all")
    assert (wide.get("srcipaddr"), wide.get("srcipmask")) == ("10.200.0.0", "16")
