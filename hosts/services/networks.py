"""Tenant networks on hosts: subnets, static leases, the per-desktop filter, and their life on the host."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.db import IntegrityError, transaction

from hosts.hypervisor import (
    DhcpHost,
    FilterParameterRef,
    FilterRule,
    NetworkSpec,
    NwFilterSpec,
    get_hypervisor,
)
from hosts.models import Host, NetworkLease, TenantNetwork
from quetzal.errors import ServiceError

__all__ = [
    "EgressRule",
    "NetworkRangeFull",
    "attach_desktop",
    "desktop_filter_spec",
    "detach_desktop",
    "lease_of",
    "network_spec",
]

# libvirtd's TCP/TLS ports and the VNC servers' range: no desktop reaches them anywhere.
HYPERVISOR_PORTS = ((16509, 16509), (16514, 16514), (5900, 5999))

_CREATE_ATTEMPTS = 5


class NetworkRangeFull(ServiceError):
    """No subnet of the operator's range is free on this host, or no address in a tenant subnet."""

    code = "network_range_full"
    status = 409


@dataclass(frozen=True)
class EgressRule:
    """One firewall rule, already ordered by the caller: first match wins."""

    action: Literal["allow", "deny"]
    cidr: str
    protocol: Literal["any", "tcp", "udp", "icmp"] = "any"
    port_start: int | None = None
    port_end: int | None = None

    def to_filter_rule(self, priority: int) -> FilterRule:
        ports = None
        if self.port_start is not None:
            ports = (self.port_start, self.port_end if self.port_end is not None else self.port_start)
        return FilterRule(
            action="accept" if self.action == "allow" else "drop",
            direction="out",
            priority=priority,
            protocol="all" if self.protocol == "any" else self.protocol,
            dst=self.cidr,
            dst_ports=ports,
        )


def lease_of(desktop_id: int) -> NetworkLease | None:
    """The desktop's lease with its network, if it has one."""
    return NetworkLease.objects.select_related("network", "network__host").filter(desktop_id=desktop_id).first()


def _candidate_subnets() -> Iterable[tuple[int, ipaddress.IPv4Network]]:
    whole = ipaddress.IPv4Network(settings.TENANT_NETWORK_RANGE)
    return enumerate(whole.subnets(new_prefix=settings.TENANT_SUBNET_PREFIX))


def _new_network(tenant, host: Host) -> TenantNetwork:
    """Carve the lowest free subnet of the range on host; the host row lock makes the pick race-free."""
    Host.objects.select_for_update().filter(pk=host.pk).first()
    existing = TenantNetwork.objects.select_for_update().filter(tenant=tenant, host=host).first()
    if existing is not None:
        return existing  # made by a concurrent caller while we waited for the lock
    taken = [(n.subnet_index, n.network) for n in TenantNetwork.objects.filter(host=host)]
    used_indexes = {index for index, _ in taken}
    for index, subnet in _candidate_subnets():
        # Skip overlaps too: rows made under an earlier range keep their subnets.
        if index in used_indexes or any(subnet.overlaps(net) for _, net in taken):
            continue
        token = secrets.token_hex(5)
        return TenantNetwork.objects.create(
            tenant=tenant,
            host=host,
            name=f"quetzal-{token}",
            bridge=f"qz{token}",
            subnet=str(subnet),
            subnet_index=index,
        )
    raise NetworkRangeFull(
        f"Every subnet of {settings.TENANT_NETWORK_RANGE} is in use on host {host.name}; widen the range."
    )


def _locked_network(tenant, host: Host) -> TenantNetwork:
    network = TenantNetwork.objects.select_for_update().filter(tenant=tenant, host=host).first()
    return network if network is not None else _new_network(tenant, host)


def _random_mac() -> str:
    # 52:54:00 is QEMU's prefix; the locally administered bit is set in 52.
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def _new_lease(network: TenantNetwork, desktop_id: int) -> NetworkLease:
    leases = list(network.leases.all())
    used_ips = {lease.ip for lease in leases}
    used_macs = {lease.mac for lease in leases}
    gateway = network.gateway
    ip = next((str(a) for a in network.network.hosts() if str(a) != gateway and str(a) not in used_ips), None)
    if ip is None:
        raise NetworkRangeFull(f"No address is free in {network.subnet}; use a larger QUETZAL_TENANT_SUBNET_PREFIX.")
    mac = _random_mac()
    while mac in used_macs:
        mac = _random_mac()
    return NetworkLease.objects.create(network=network, desktop_id=desktop_id, mac=mac, ip=ip)


def network_spec(network: TenantNetwork) -> NetworkSpec:
    """The libvirt network of a tenant network row, with every lease as a static DHCP host."""
    return NetworkSpec(
        name=network.name,
        bridge=network.bridge,
        subnet=network.subnet,
        dhcp_hosts=tuple(DhcpHost(mac=lease.mac, ip=lease.ip) for lease in network.leases.order_by("id")),
        isolated_ports=not network.tenant.allow_intra_tenant_traffic,
    )


def attach_desktop(*, tenant, host: Host, desktop_id: int) -> NetworkLease:
    """The desktop's lease on its tenant's network on host; makes the network (row and host side) if needed."""
    existing = lease_of(desktop_id)
    if existing is not None and existing.network.host_id != host.pk:
        detach_desktop(desktop_id=desktop_id)  # moved to another host (rebuild): leave the old network
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with transaction.atomic():
                network = _locked_network(tenant, host)
                lease = NetworkLease.objects.filter(desktop_id=desktop_id, network=network).first()
                if lease is None:
                    lease = _new_lease(network, desktop_id)
                # Under the network's row lock: a last desktop leaving cannot remove it meanwhile.
                get_hypervisor(host.uri).network_ensure(network_spec(network))
                return lease
        except IntegrityError:
            # A concurrent first desktop made the row (or took the address) first: look again.
            if attempt == _CREATE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def detach_desktop(*, desktop_id: int) -> None:
    """Drop the desktop's filter and lease; the network goes from the host with its last desktop."""
    lease = lease_of(desktop_id)
    if lease is None:
        return
    with transaction.atomic():
        network = TenantNetwork.objects.select_for_update().select_related("host", "tenant").get(pk=lease.network_id)
        hv = get_hypervisor(network.host.uri)
        if hv.supports_nwfilter:
            hv.nwfilter_remove(lease.filter_name)
        NetworkLease.objects.filter(pk=lease.pk).delete()
        if network.leases.exists():
            hv.network_ensure(network_spec(network))
        else:
            hv.network_remove(network.name)
            network.delete()


def _blocked(network: TenantNetwork) -> list[ipaddress.IPv4Network]:
    """Everything of the tenant range but the gateway, plus the operator's blocked networks and the host."""
    whole = ipaddress.IPv4Network(settings.TENANT_NETWORK_RANGE)
    gateway = ipaddress.IPv4Network(f"{network.gateway}/32")
    out: list[ipaddress.IPv4Network] = []
    for net in ipaddress.collapse_addresses([whole, network.network]):
        out.extend(net.address_exclude(gateway) if gateway.subnet_of(net) else [net])
    out.extend(ipaddress.IPv4Network(n) for n in settings.TENANT_NETWORK_BLOCKED)
    management = network.host.console_address
    try:
        address = ipaddress.IPv4Address(management)
    except ValueError:
        address = None  # a DNS name: the operator lists the management network in the blocked setting
    if address is not None and not address.is_loopback:
        out.append(ipaddress.IPv4Network(f"{address}/32"))
    return sorted(set(out))


def desktop_filter_spec(
    lease: NetworkLease, *, egress: Sequence[EgressRule], allow_all_outbound: bool, allow_intra_tenant: bool
) -> NwFilterSpec:
    """The desktop's nwfilter: anti-spoofing, DHCP from the gateway only, no neighbours, then its egress rules."""
    network = lease.network
    gateway = network.gateway
    rules: list[FilterRule] = [
        # DHCP: requests out (broadcast, no address yet), answers only from the gateway, and never serve it.
        FilterRule("accept", "out", 100, "udp", src_ports=(68, 68), dst_ports=(67, 67), stateful=False),
        FilterRule("accept", "in", 101, "udp", src=gateway, src_ports=(67, 67), dst_ports=(68, 68), stateful=False),
        FilterRule("drop", "in", 102, "udp", src_ports=(67, 67)),
        FilterRule("drop", "out", 103, "udp", src_ports=(67, 67)),
        # The gateway is the host: it answers DNS, nothing else over TCP or UDP.
        FilterRule("accept", "out", 110, "udp", dst=gateway, dst_ports=(53, 53)),
        FilterRule("accept", "out", 111, "tcp", dst=gateway, dst_ports=(53, 53)),
        FilterRule("drop", "out", 112, "tcp", dst=gateway),
        FilterRule("drop", "out", 113, "udp", dst=gateway),
    ]
    priority = 120
    for low, high in HYPERVISOR_PORTS:
        rules.append(FilterRule("drop", "out", priority, "tcp", dst_ports=(low, high)))
        priority += 1
    if allow_intra_tenant:
        # Both ways: the final drop would otherwise refuse a neighbour's new connections on arrival.
        rules.append(FilterRule("accept", "out", priority, "all", dst=network.subnet))
        rules.append(FilterRule("accept", "in", priority + 1, "all", src=network.subnet))
        priority += 2
    # Port isolation alone is bypassed by routing a neighbour through the gateway; these drops are not.
    for net in _blocked(network):
        rules.append(FilterRule("drop", "out", priority, "all", dst=str(net)))
        priority += 1
    base = max(priority, 200)
    for offset, rule in enumerate(egress):
        rules.append(rule.to_filter_rule(base + offset))
    last = base + len(egress)
    if last > 990:
        raise ServiceError("Too many firewall rules for one desktop.", code="too_many_rules")
    rules.append(FilterRule("accept" if allow_all_outbound else "drop", "out", 995, "all"))
    rules.append(FilterRule("drop", "inout", 1000, "all"))
    return NwFilterSpec(
        name=lease.filter_name,
        refs=(FilterParameterRef("clean-traffic", (("IP", lease.ip),)),),
        rules=tuple(rules),
    )
