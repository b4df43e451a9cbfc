"""Network and nwfilter operations on an open libvirt connection ("already so" counts as success)."""

from __future__ import annotations

import dataclasses
import ipaddress

import libvirt

from hosts.hypervisor.domain import parse_xml
from hosts.hypervisor.network import DhcpHost, NetworkSpec, NwFilterSpec

__all__ = [
    "network_dhcp_hosts",
    "network_ensure",
    "network_remove",
    "network_subnets",
    "nwfilter_define",
    "nwfilter_exists",
    "nwfilter_remove",
    "supports_nwfilter",
]

_LIVE_AND_CONFIG = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG


def _lookup_network(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork | None:
    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            return None
        raise


def _dhcp_hosts(xml: str) -> tuple[DhcpHost, ...]:
    root = parse_xml(xml)
    return tuple(DhcpHost(mac=h.get("mac", ""), ip=h.get("ip", "")) for h in root.iterfind("ip/dhcp/host"))


def network_dhcp_hosts(conn: libvirt.virConnect, name: str) -> tuple[DhcpHost, ...] | None:
    """The static leases of the running network (None when there is no such network)."""
    net = _lookup_network(conn, name)
    return None if net is None else _dhcp_hosts(net.XMLDesc(0))


def network_subnets(conn: libvirt.virConnect) -> tuple[tuple[str, str], ...]:
    """(name, CIDR) of every IPv4 subnet of every network defined on the host, running or not."""
    found = []
    for net in conn.listAllNetworks(0):
        try:
            root = parse_xml(net.XMLDesc(0))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                continue  # undefined while we looked
            raise
        for ip in root.iterfind("ip"):
            address, mask = ip.get("address"), ip.get("prefix") or ip.get("netmask")
            if not address or not mask or ip.get("family", "ipv4") != "ipv4":
                continue
            found.append((net.name(), str(ipaddress.IPv4Network(f"{address}/{mask}", strict=False))))
    return tuple(found)


def network_ensure(conn: libvirt.virConnect, spec: NetworkSpec) -> None:
    """Define, start and autostart the network; on a running one bring its static leases in line live."""
    net = _lookup_network(conn, spec.name)
    if net is None:
        try:
            net = conn.networkDefineXML(spec.to_xml())
        except libvirt.libvirtError as exc:
            # Two workers raced to define it: the other one won, which is what we wanted.
            if exc.get_error_code() != getattr(libvirt, "VIR_ERR_NETWORK_EXIST", -1):
                raise
            net = conn.networkLookupByName(spec.name)
    if not net.isActive():
        try:
            net.create()
        except libvirt.libvirtError:
            if not net.isActive():
                raise
    if not net.autostart():
        net.setAutostart(1)
    _sync_dhcp_hosts(net, spec.dhcp_hosts)


def _sync_dhcp_hosts(net: libvirt.virNetwork, wanted: tuple[DhcpHost, ...]) -> None:
    """Delete leases that should not be there and add missing ones, live and in the config."""
    current = {(h.mac, h.ip): h for h in _dhcp_hosts(net.XMLDesc(0))}
    target = {(h.mac, h.ip): h for h in wanted}
    for key, host in current.items():
        if key not in target:
            net.update(
                libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
                libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                -1,
                host.to_xml(),
                _LIVE_AND_CONFIG,
            )
    for key, host in target.items():
        if key not in current:
            net.update(
                libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
                libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                -1,
                host.to_xml(),
                _LIVE_AND_CONFIG,
            )


def network_remove(conn: libvirt.virConnect, name: str) -> None:
    """Stop and undefine the network; a missing one is success."""
    net = _lookup_network(conn, name)
    if net is None:
        return
    try:
        if net.isActive():
            net.destroy()
        net.undefine()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
            raise


def supports_nwfilter(conn: libvirt.virConnect) -> bool:
    """Whether the connection has an nwfilter driver (libvirt's test driver has none)."""
    try:
        conn.listAllNWFilters(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return False
        raise
    return True


def nwfilter_define(conn: libvirt.virConnect, spec: NwFilterSpec) -> None:
    """Create or replace the filter; libvirt re-applies a replaced filter to running guests at once."""
    if spec.uuid is None:
        try:
            current = conn.nwfilterLookupByName(spec.name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_NWFILTER:
                raise
        else:
            # A redefinition must carry the filter's UUID, or libvirt refuses it as a second filter of that name.
            spec = dataclasses.replace(spec, uuid=current.UUIDString())
    conn.nwfilterDefineXML(spec.to_xml())


def nwfilter_exists(conn: libvirt.virConnect, name: str) -> bool:
    """Whether a filter of that name is defined."""
    try:
        conn.nwfilterLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NWFILTER:
            return False
        raise
    return True


def nwfilter_remove(conn: libvirt.virConnect, name: str) -> None:
    """Undefine the filter; a missing one is success (one still in use by a guest is an error)."""
    try:
        conn.nwfilterLookupByName(name).undefine()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_NWFILTER:
            raise
