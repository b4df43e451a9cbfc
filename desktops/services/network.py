"""A desktop's place on its tenant's network: lease, filter and interface, made at placement and re-applied live."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from django.conf import settings

from desktops.choices import DesktopState
from desktops.models import Desktop, FirewallRule
from hosts.hypervisor import (
    DomainNotFound,
    HypervisorError,
    InterfaceSpec,
    NotSupported,
    NwFilterSpec,
    get_hypervisor,
)
from hosts.models import Host, NetworkLease
from hosts.services import networks
from tenants.choices import EgressPolicy

log = logging.getLogger(__name__)


def effective_rules(desktop: Desktop) -> list[FirewallRule]:
    """The desktop's egress rules, most specific first: its own, then its template's, then the tenant's."""
    scoped = FirewallRule.objects.for_tenant(desktop.tenant_id)
    own = list(scoped.filter(desktop=desktop))
    by_template = list(scoped.filter(template_id=desktop.template_id, desktop__isnull=True))
    default = list(scoped.filter(template__isnull=True, desktop__isnull=True))
    return own + by_template + default


def _egress(rule: FirewallRule) -> networks.EgressRule:
    return networks.EgressRule(
        action=rule.action,  # type: ignore[arg-type]
        cidr=rule.cidr,
        protocol=rule.protocol,  # type: ignore[arg-type]
        port_start=rule.port_start,
        port_end=rule.port_end,
    )


def lease_address(lease: NetworkLease) -> dict[str, str]:
    """address() of a lease read with its network."""
    net = lease.network
    return {"network": net.name, "subnet": net.subnet, "gateway": net.gateway, "ip": lease.ip, "mac": lease.mac}


def address(desktop: Desktop) -> dict[str, str] | None:
    """Which tenant network the desktop is on and its address there, for the API and the pages."""
    lease = networks.lease_of(desktop.pk)
    return lease_address(lease) if lease is not None else None


def addresses(desktop_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """address() of many desktops in one query."""
    leases = NetworkLease.objects.select_related("network").filter(desktop_id__in=list(desktop_ids))
    return {lease.desktop_id: lease_address(lease) for lease in leases}


def filter_spec(desktop: Desktop, lease: NetworkLease) -> NwFilterSpec:
    """The desktop's nwfilter under its tenant's current policy and rules."""
    tenant = desktop.tenant
    return networks.desktop_filter_spec(
        lease,
        egress=[_egress(rule) for rule in effective_rules(desktop)],
        allow_all_outbound=tenant.egress_policy == EgressPolicy.ALLOW_ALL,
        allow_intra_tenant=tenant.allow_intra_tenant_traffic,
    )


def attach(desktop: Desktop, host: Host) -> InterfaceSpec | None:
    """Lease an address on the tenant's network on host (made there if this is its first desktop), define the filter."""
    if not settings.TENANT_NETWORKS:
        return None
    lease = networks.attach_desktop(tenant=desktop.tenant, host=host, desktop_id=desktop.pk)
    hv = get_hypervisor(host.uri)
    if hv.supports_nwfilter:
        hv.nwfilter_define(filter_spec(desktop, lease))
    return InterfaceSpec(
        network=lease.network.name,
        mac=lease.mac,
        isolated=not desktop.tenant.allow_intra_tenant_traffic,
        filter=lease.filter_name,
    )


def prepare_move(desktop: Desktop, host: Host) -> InterfaceSpec | None:
    """Make the desktop's place on host before it moves there live: network, DHCP entry, filter; its NIC there.

    The lease row keeps naming the source until finish_move; undo_move takes the destination side away again.
    """
    if not settings.TENANT_NETWORKS:
        return None
    lease = networks.reserve_move(tenant=desktop.tenant, host=host, desktop_id=desktop.pk)
    if lease is None:
        return None  # placed before tenant networks were on: it moves as it is
    try:
        hv = get_hypervisor(host.uri)
        if hv.supports_nwfilter:
            # Defined before the guest arrives: its tap is filtered from the first frame on.
            hv.nwfilter_define(filter_spec(desktop, lease))
    except Exception:
        networks.cancel_move(desktop_id=desktop.pk)
        raise
    return InterfaceSpec(
        network=lease.network.name,
        mac=lease.mac,
        isolated=not desktop.tenant.allow_intra_tenant_traffic,
        filter=lease.filter_name,
    )


def finish_move(desktop: Desktop) -> None:
    """The desktop runs on its new host: its lease follows it; the old host's filter (and maybe network) goes."""
    networks.complete_move(desktop_id=desktop.pk)


def undo_move(desktop: Desktop) -> None:
    """The move failed: the destination's filter and held address go (its network too when nothing else uses it)."""
    networks.cancel_move(desktop_id=desktop.pk)


def detach(desktop: Desktop) -> None:
    """Give back the lease and filter (after the domain is gone); the last desktop takes the network with it."""
    networks.detach_desktop(desktop_id=desktop.pk)


def _isolate(hv, desktop: Desktop, lease: NetworkLease) -> None:
    """Port isolation as the tenant's policy says (it may have changed since the domain was defined)."""
    # libvirt's test driver cannot update devices; a domain not defined yet gets it at definition.
    with contextlib.suppress(NotSupported, DomainNotFound):
        hv.interface_set_isolated(desktop.domain_name, lease.mac, not desktop.tenant.allow_intra_tenant_traffic)


def reapply(desktop_ids: Iterable[int]) -> int:
    """Redefine the filters of these desktops from the current rules; libvirt applies them to running guests live."""
    applied = 0
    desktops = Desktop.objects.filter(pk__in=list(desktop_ids)).exclude(state=DesktopState.DELETED)
    for desktop in desktops.select_related("tenant"):
        lease = networks.lease_of(desktop.pk)
        if lease is None:
            continue
        hv = get_hypervisor(lease.network.host.uri)
        try:
            _isolate(hv, desktop, lease)
            if not hv.supports_nwfilter:
                continue
            hv.nwfilter_define(filter_spec(desktop, lease))
        except HypervisorError as error:
            # One unreachable host must not keep the others' desktops on old rules; reconcile retries it.
            log.warning("could not re-apply the filter of desktop %s: %s", desktop.pk, error)
            continue
        applied += 1
    return applied
