"""Tenant networks on hosts and the static DHCP lease of each desktop on them."""

from __future__ import annotations

import ipaddress

from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.querysets import TenantQuerySet


class TenantNetwork(models.Model):
    """One tenant's NAT network on one host: its own bridge and subnet (rule 9)."""

    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="networks"
    )
    host = models.ForeignKey(
        "hosts.Host", verbose_name=_("host"), on_delete=models.CASCADE, related_name="tenant_networks"
    )
    # Random parts keep names unique across installations sharing one libvirtd (and test runs).
    name = models.CharField(
        verbose_name=_("name"), max_length=64, unique=True, help_text=_("The libvirt network name.")
    )
    bridge = models.CharField(verbose_name=_("bridge"), max_length=15, help_text=_("The Linux bridge on the host."))
    subnet = models.CharField(
        verbose_name=_("subnet"), max_length=18, help_text=_("CIDR; the gateway is its first address.")
    )
    subnet_index = models.PositiveIntegerField(
        verbose_name=_("subnet index"), help_text=_("Which slice of the operator's range this is.")
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("tenant network")
        verbose_name_plural = _("tenant networks")
        ordering = ["host_id", "subnet_index"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "host"], name="tenant_network_one_per_host"),
            models.UniqueConstraint(fields=["host", "subnet_index"], name="tenant_network_unique_subnet"),
            models.UniqueConstraint(fields=["host", "bridge"], name="tenant_network_unique_bridge"),
        ]

    def __str__(self) -> str:
        return f"{self.subnet} on {self.host_id}"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)


class NetworkLease(models.Model):
    """A desktop's MAC and address on its tenant network; desktop_id is plain so hosts never imports desktops."""

    network = models.ForeignKey(
        TenantNetwork, verbose_name=_("network"), on_delete=models.PROTECT, related_name="leases"
    )
    desktop_id = models.BigIntegerField(verbose_name=_("desktop id"), unique=True)
    mac = models.CharField(verbose_name=_("mac"), max_length=17)
    ip = models.GenericIPAddressField(verbose_name=_("ip"), protocol="IPv4")
    # While the desktop moves live to another host: the address held for it on that host's network. The
    # lease itself (network, ip) changes only once the move succeeded; a failed move just clears these.
    moving_to = models.ForeignKey(
        TenantNetwork,
        verbose_name=_("moving to"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="incoming",
    )
    moving_ip = models.GenericIPAddressField(verbose_name=_("moving ip"), protocol="IPv4", null=True, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("network lease")
        verbose_name_plural = _("network leases")
        ordering = ["network_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["network", "ip"], name="lease_unique_ip"),
            models.UniqueConstraint(fields=["network", "mac"], name="lease_unique_mac"),
            models.UniqueConstraint(fields=["moving_to", "moving_ip"], name="lease_unique_incoming_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.ip} ({self.mac})"

    @property
    def filter_name(self) -> str:
        """The nwfilter of this desktop's interface (the network's random name keeps it unique)."""
        return filter_name(self.network, self.desktop_id)


def filter_name(network: TenantNetwork, desktop_id: int) -> str:
    """The name of a desktop's nwfilter on one tenant network."""
    return f"{network.name}-d{desktop_id}"
