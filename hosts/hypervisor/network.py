"""Typed libvirt network and nwfilter configuration: frozen dataclasses that render XML (no I/O, no policy)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from lxml import etree

__all__ = [
    "DhcpHost",
    "FilterParameterRef",
    "FilterRule",
    "NetworkSpec",
    "NwFilterSpec",
]

# Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
_BRIDGE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,14}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_PARAM_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")

Action = Literal["accept", "drop", "reject", "return"]
Direction = Literal["in", "out", "inout"]
Protocol = Literal["tcp", "udp", "icmp", "all"]


def _require(ok: bool, message: str) -> None:
    """Raise ValueError with message unless ok."""
    if not ok:
        raise ValueError(message)


def _sub(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, tag, attrs)


def _tostring(el: etree._Element) -> str:
    return etree.tostring(el, encoding="unicode", pretty_print=True)


@dataclass(frozen=True)
class DhcpHost:
    """A static DHCP lease: this MAC always gets this address."""

    mac: str
    ip: str
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", self.mac.lower())
        _require(bool(_MAC_RE.fullmatch(self.mac)), "bad MAC address")
        object.__setattr__(self, "ip", str(ipaddress.IPv4Address(self.ip)))
        _require(self.name is None or bool(_NAME_RE.fullmatch(self.name)), "bad DHCP host name")

    def to_element(self) -> etree._Element:
        """The <host> element of a network's <dhcp>."""
        attrs = {"mac": self.mac, "ip": self.ip}
        if self.name:
            attrs["name"] = self.name
        return etree.Element("host", attrs)

    def to_xml(self) -> str:
        """The element alone, as virNetworkUpdate takes it."""
        return etree.tostring(self.to_element(), encoding="unicode")


@dataclass(frozen=True)
class NetworkSpec:
    """A NAT network on its own bridge; DHCP hands out only the static leases listed (no dynamic range)."""

    name: str
    bridge: str
    subnet: str
    dhcp_hosts: tuple[DhcpHost, ...] = ()
    forward: Literal["nat", "none"] = "nat"
    isolated_ports: bool = True
    domain_name: str | None = None

    def __post_init__(self) -> None:
        _require(bool(_NAME_RE.fullmatch(self.name)), "bad network name")
        _require(bool(_BRIDGE_RE.fullmatch(self.bridge)), "bridge name must be 1..15 of [a-z0-9_-]")
        net = ipaddress.IPv4Network(self.subnet)
        _require(net.prefixlen <= 30, "a network needs at least a /30")
        object.__setattr__(self, "subnet", str(net))
        object.__setattr__(self, "dhcp_hosts", tuple(self.dhcp_hosts))
        for host in self.dhcp_hosts:
            _require(ipaddress.IPv4Address(host.ip) in net, f"DHCP host {host.ip} is outside {net}")
            _require(host.ip != self.gateway, "a DHCP host cannot take the gateway address")
        _require(len({h.mac for h in self.dhcp_hosts}) == len(self.dhcp_hosts), "duplicate MAC in DHCP hosts")
        _require(len({h.ip for h in self.dhcp_hosts}) == len(self.dhcp_hosts), "duplicate IP in DHCP hosts")
        _require(self.forward in ("nat", "none"), "forward must be nat or none")
        _require(self.domain_name is None or bool(_NAME_RE.fullmatch(self.domain_name)), "bad DNS domain")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        """The host's address on the bridge: the first address of the subnet."""
        return str(self.network.network_address + 1)

    def to_element(self) -> etree._Element:
        """The <network> element."""
        root = etree.Element("network")
        etree.SubElement(root, "name").text = self.name
        if self.forward == "nat":
            _sub(root, "forward", mode="nat")
        _sub(root, "bridge", name=self.bridge, stp="on", delay="0")
        if self.isolated_ports:
            # New taps join the bridge isolated: guests on it cannot talk to each other at layer 2.
            _sub(root, "port", isolated="yes")
        if self.domain_name:
            _sub(root, "domain", name=self.domain_name, localOnly="yes")
        ip = _sub(root, "ip", address=self.gateway, netmask=str(self.network.netmask))
        dhcp = _sub(ip, "dhcp")
        for host in self.dhcp_hosts:
            dhcp.append(host.to_element())
        return root

    def to_xml(self) -> str:
        """The network XML document."""
        return _tostring(self.to_element())


@dataclass(frozen=True)
class FilterRule:
    """One iptables-level nwfilter rule: protocol, optional destination/source and port range."""

    action: Action
    direction: Direction
    priority: int
    protocol: Protocol = "all"
    dst: str | None = None  # a CIDR or address (the guest's peer for out, the guest for in)
    src: str | None = None
    dst_ports: tuple[int, int] | None = None
    src_ports: tuple[int, int] | None = None
    stateful: bool = True

    def __post_init__(self) -> None:
        _require(self.action in ("accept", "drop", "reject", "return"), "bad filter action")
        _require(self.direction in ("in", "out", "inout"), "bad filter direction")
        _require(self.protocol in ("tcp", "udp", "icmp", "all"), "bad filter protocol")
        _require(-1000 <= self.priority <= 1000, "nwfilter priority must be within -1000..1000")
        for name in ("dst", "src"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(ipaddress.IPv4Network(value, strict=False)))
        for name in ("dst_ports", "src_ports"):
            ports = getattr(self, name)
            if ports is not None:
                _require(self.protocol in ("tcp", "udp"), "ports need tcp or udp")
                low, high = ports
                _require(1 <= low <= high <= 65535, "port range must be 1 <= start <= end <= 65535")

    def to_element(self) -> etree._Element:
        """The <rule> element."""
        rule = etree.Element("rule", action=self.action, direction=self.direction, priority=str(self.priority))
        if not self.stateful:
            rule.set("statematch", "false")
        attrs: dict[str, str] = {}
        for name, prefix in (("dst", "dst"), ("src", "src")):
            value = getattr(self, name)
            if value is not None:
                net = ipaddress.IPv4Network(value)
                attrs[f"{prefix}ipaddr"] = str(net.network_address)
                if net.prefixlen != 32:
                    attrs[f"{prefix}ipmask"] = str(net.prefixlen)
        for name, prefix in (("dst_ports", "dstport"), ("src_ports", "srcport")):
            ports = getattr(self, name)
            if ports is not None:
                attrs[f"{prefix}start"] = str(ports[0])
                if ports[1] != ports[0]:
                    attrs[f"{prefix}end"] = str(ports[1])
        _sub(rule, self.protocol, **attrs)
        return rule


@dataclass(frozen=True)
class FilterParameterRef:
    """A reference to another filter (e.g. libvirt's clean-traffic) with its parameters."""

    filter: str
    parameters: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _require(bool(_NAME_RE.fullmatch(self.filter)), "bad filter name")
        object.__setattr__(self, "parameters", tuple(self.parameters))
        for key, value in self.parameters:
            _require(bool(_PARAM_RE.fullmatch(key)), f"bad filter parameter name {key!r}")
            _require(bool(value) and all(c.isalnum() or c in ".:-_" for c in value), "bad filter parameter value")

    def to_element(self) -> etree._Element:
        """The <filterref> element."""
        ref = etree.Element("filterref", filter=self.filter)
        for key, value in self.parameters:
            _sub(ref, "parameter", name=key, value=value)
        return ref


@dataclass(frozen=True)
class NwFilterSpec:
    """A named nwfilter: referenced filters first, then rules (libvirt orders rules by priority)."""

    name: str
    refs: tuple[FilterParameterRef, ...] = ()
    rules: tuple[FilterRule, ...] = ()
    uuid: str | None = None

    def __post_init__(self) -> None:
        _require(bool(_NAME_RE.fullmatch(self.name)), "bad filter name")
        object.__setattr__(self, "refs", tuple(self.refs))
        object.__setattr__(self, "rules", tuple(self.rules))

    def to_element(self) -> etree._Element:
        """The <filter> element."""
        root = etree.Element("filter", name=self.name, chain="root")
        if self.uuid:
            etree.SubElement(root, "uuid").text = self.uuid
        for ref in self.refs:
            root.append(ref.to_element())
        for rule in self.rules:
            root.append(rule.to_element())
        return root

    def to_xml(self) -> str:
        """The nwfilter XML document."""
        return _tostring(self.to_element())
