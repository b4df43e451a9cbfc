"""Tenant networks on hosts: subnets, static leases, the per-desktop filter, and their life on the host."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from hosts.hypervisor import (
    DhcpHost,
    FilterParameterRef,
    FilterRule,
    HypervisorError,
    NetworkSpec,
    NwFilterSpec,
    get_hypervisor,
)
from hosts.models import Host, NetworkLease, TenantNetwork
from hosts.models.network import filter_name
from quetzal.errors import ServiceError

__all__ = [
    "EgressRule",
    "NetworkRangeFull",
    "attach_desktop",
    "cancel_move",
    "complete_move",
    "desktop_filter_spec",
    "detach_desktop",
    "lease_of",
    "network_spec",
    "reserve_move",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

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


def _preferred_subnets(tenant, host: Host) -> list[tuple[int, ipaddress.IPv4Network]]:
    """The range's subnets in the order a tenant's first network on host tries them.

    First the slice the tenant has on its other hosts, so a desktop moved live keeps its address;
    then slices no other tenant uses on any host, so that stays possible for every tenant; then the rest.
    """
    own = set(TenantNetwork.objects.filter(tenant=tenant).exclude(host=host).values_list("subnet_index", flat=True))
    others = set(TenantNetwork.objects.exclude(tenant=tenant).values_list("subnet_index", flat=True))
    return sorted(_candidate_subnets(), key=lambda c: (c[0] not in own, c[0] in others, c[0]))


def _on_host_already(host: Host) -> list[ipaddress.IPv4Network]:
    """Subnets the host's own networks use, whoever made them (another installation, the operator, a crash).

    libvirt refuses to start a network on a subnet the host already routes ("Network is already in use by
    interface ..."), and every desktop placed there would fail to start: such subnets are not free.
    """
    return [ipaddress.IPv4Network(cidr) for _name, cidr in get_hypervisor(host.uri).network_subnets()]


def _new_network(tenant, host: Host) -> TenantNetwork:
    """Carve a free subnet of the range on host (see _preferred_subnets); the host row lock makes it race-free."""
    Host.objects.select_for_update().filter(pk=host.pk).first()
    existing = TenantNetwork.objects.select_for_update().filter(tenant=tenant, host=host).first()
    if existing is not None:
        return existing  # made by a concurrent caller while we waited for the lock
    taken = [(n.subnet_index, n.network) for n in TenantNetwork.objects.filter(host=host)]
    used_indexes = {index for index, _ in taken}
    on_host = _on_host_already(host)
    for index, subnet in _preferred_subnets(tenant, host):
        # Skip overlaps too: rows made under an earlier range keep their subnets.
        if index in used_indexes or any(subnet.overlaps(net) for _, net in taken):
            continue
        if any(subnet.overlaps(net) for net in on_host):
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
        gettext("Every subnet of %(TENANT_NETWORK_RANGE)s is in use on host %(name)s; widen the range.")
        % {"TENANT_NETWORK_RANGE": settings.TENANT_NETWORK_RANGE, "name": host.name}
    )


def _locked_network(tenant, host: Host) -> TenantNetwork:
    network = TenantNetwork.objects.select_for_update().filter(tenant=tenant, host=host).first()
    return network if network is not None else _new_network(tenant, host)


def _random_mac() -> str:
    # 52:54:00 is QEMU's prefix; the locally administered bit is set in 52.
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def _held(network: TenantNetwork) -> list[tuple[int, str, str]]:
    """(lease id, MAC, address) of every address taken on the network: its leases and those held for moves."""
    held = [(lease.pk, lease.mac, lease.ip) for lease in network.leases.all()]
    held += [(lease.pk, lease.mac, str(lease.moving_ip)) for lease in network.incoming.all()]
    return sorted(held)


def _free_ip(network: TenantNetwork, used: set[str], wanted: str | None = None) -> str:
    """`wanted` if it is a free address of the network, else its lowest free one."""
    gateway = network.gateway
    if wanted is not None and wanted not in used and wanted != gateway:
        address = ipaddress.IPv4Address(wanted)
        if address in network.network and address not in (network.network.network_address, network.network[-1]):
            return wanted
    ip = next((str(a) for a in network.network.hosts() if str(a) != gateway and str(a) not in used), None)
    if ip is None:
        raise NetworkRangeFull(
            gettext("No address is free in %(subnet)s; use a larger QUETZAL_TENANT_SUBNET_PREFIX.")
            % {"subnet": network.subnet}
        )
    return ip


def _new_lease(network: TenantNetwork, desktop_id: int) -> NetworkLease:
    held = _held(network)
    ip = _free_ip(network, {ip for _, _, ip in held})
    used_macs = {mac for _, mac, _ in held}
    mac = _random_mac()
    while mac in used_macs:
        mac = _random_mac()
    return NetworkLease.objects.create(network=network, desktop_id=desktop_id, mac=mac, ip=ip)


def network_spec(network: TenantNetwork) -> NetworkSpec:
    """The libvirt network of a tenant network row: every lease, and every address held for a move, a static host."""
    return NetworkSpec(
        name=network.name,
        bridge=network.bridge,
        subnet=network.subnet,
        dhcp_hosts=tuple(DhcpHost(mac=mac, ip=ip) for _, mac, ip in _held(network)),
        isolated_ports=not network.tenant.allow_intra_tenant_traffic,
    )


def _with_network(tenant, host: Host, work: Callable[[TenantNetwork], T]) -> T:
    """work(network) inside a transaction holding the tenant's network on host (made if needed), retried on races."""
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with transaction.atomic():
                network = _locked_network(tenant, host)
                result = work(network)
                # Under the network's row lock: a last desktop leaving cannot remove it meanwhile.
                get_hypervisor(host.uri).network_ensure(network_spec(network))
                return result
        except IntegrityError:
            # A concurrent first desktop made the row (or took the address) first: look again.
            if attempt == _CREATE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def attach_desktop(*, tenant, host: Host, desktop_id: int) -> NetworkLease:
    """The desktop's lease on its tenant's network on host; makes the network (row and host side) if needed."""
    existing = lease_of(desktop_id)
    if existing is not None and existing.network.host_id != host.pk:
        detach_desktop(desktop_id=desktop_id)  # moved to another host (rebuild): leave the old network

    def lease(network: TenantNetwork) -> NetworkLease:
        found = NetworkLease.objects.filter(desktop_id=desktop_id, network=network).first()
        return found if found is not None else _new_lease(network, desktop_id)

    return _with_network(tenant, host, lease)


def _leave(network_id: int, filter_name: str, *, lease_id: int | None = None) -> None:
    """Remove a desktop's filter from a network's host (and its lease row); the network goes when nothing holds it."""
    with transaction.atomic():
        locked = TenantNetwork.objects.select_for_update().select_related("host", "tenant")
        network = locked.filter(pk=network_id).first()
        if network is None:
            return
        hv = get_hypervisor(network.host.uri)
        if hv.supports_nwfilter:
            hv.nwfilter_remove(filter_name)
        if lease_id is not None:
            NetworkLease.objects.filter(pk=lease_id).delete()
        if network.leases.exists() or network.incoming.exists():
            hv.network_ensure(network_spec(network))
        else:
            hv.network_remove(network.name)
            network.delete()


def detach_desktop(*, desktop_id: int) -> None:
    """Drop the desktop's filter and lease; the network goes from the host with its last desktop."""
    cancel_move(desktop_id=desktop_id)  # a move a crash left half-done holds an address elsewhere
    lease = lease_of(desktop_id)
    if lease is None:
        return
    _leave(lease.network_id, lease.filter_name, lease_id=lease.pk)


# --- live moves: the lease follows the desktop only once it is there ---------------------------------


class MacTaken(ServiceError):
    """Another desktop on the destination's network has the moving desktop's MAC (a running guest keeps its MAC)."""

    code = "not_movable"
    status = 409


def reserve_move(*, tenant, host: Host, desktop_id: int) -> NetworkLease | None:
    """Hold the desktop's place on its tenant's network on host (made if needed) while it moves there.

    The same MAC, and the same address when the subnet matches and it is free there (see _preferred_subnets).
    The destination's DHCP knows it at once; the lease row still names the source network. Returns the lease
    as it will be on host (unsaved), or None for a desktop without one.
    """
    cancel_move(desktop_id=desktop_id)  # what an earlier, interrupted attempt held
    if lease_of(desktop_id) is None:
        return None

    def hold(network: TenantNetwork) -> NetworkLease:
        lease = NetworkLease.objects.select_for_update().select_related("network").get(desktop_id=desktop_id)
        others = [(mac, ip) for pk, mac, ip in _held(network) if pk != lease.pk]
        if lease.mac in {mac for mac, _ in others}:
            raise MacTaken(
                gettext("Another desktop on %(name)s has this desktop's MAC %(mac)s; stop it to move it.")
                % {"name": host.name, "mac": lease.mac}
            )
        ip = _free_ip(network, {ip for _, ip in others}, wanted=lease.ip)
        NetworkLease.objects.filter(pk=lease.pk).update(moving_to=network, moving_ip=ip)
        return NetworkLease(network=network, desktop_id=desktop_id, mac=lease.mac, ip=ip)

    return _with_network(tenant, host, hold)


def complete_move(*, desktop_id: int) -> None:
    """The desktop runs on the destination now: its lease moves there, the source side goes."""
    with transaction.atomic():
        lease = NetworkLease.objects.select_for_update().select_related("network").filter(desktop_id=desktop_id).first()
        if lease is None or lease.moving_to_id is None:
            return  # no lease, or a retry of a move already recorded
        # Both networks locked in one order, so two moves the opposite way cannot deadlock.
        list(TenantNetwork.objects.select_for_update().filter(pk__in=[lease.network_id, lease.moving_to_id]))
        source_id, old_filter = lease.network_id, lease.filter_name
        NetworkLease.objects.filter(pk=lease.pk).update(
            network_id=lease.moving_to_id, ip=lease.moving_ip, moving_to=None, moving_ip=None
        )
    try:
        _leave(source_id, old_filter)
    except HypervisorError as error:
        # The desktop has moved; a source host that cannot be tidied now keeps a stale filter, nothing more.
        log.warning("could not remove desktop %s's filter %s from its old host: %s", desktop_id, old_filter, error)


def cancel_move(*, desktop_id: int) -> None:
    """The move failed: let go of the address held on the destination (and its filter; its network if unused)."""
    with transaction.atomic():
        lease = NetworkLease.objects.select_for_update().filter(desktop_id=desktop_id).first()
        if lease is None or lease.moving_to_id is None:
            return
        target = TenantNetwork.objects.get(pk=lease.moving_to_id)
        NetworkLease.objects.filter(pk=lease.pk).update(moving_to=None, moving_ip=None)
    _leave(target.pk, filter_name(target, desktop_id))


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
        raise ServiceError(gettext("Too many firewall rules for one desktop."), code="too_many_rules")
    rules.append(FilterRule("accept" if allow_all_outbound else "drop", "out", 995, "all"))
    rules.append(FilterRule("drop", "inout", 1000, "all"))
    return NwFilterSpec(
        name=lease.filter_name,
        refs=(FilterParameterRef("clean-traffic", (("IP", lease.ip),)),),
        rules=tuple(rules),
    )
