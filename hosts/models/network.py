"""Tenant networks on hosts and the static DHCP lease of each desktop on them."""

from __future__ import annotations

import ipaddress

from django.db import models

from tenants.querysets import TenantQuerySet


class TenantNetwork(models.Model):
    """One tenant's NAT network on one host: its own bridge and subnet (rule 9)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="networks")
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="tenant_networks")
    # Random parts keep names unique across installations sharing one libvirtd (and test runs).
    name = models.CharField(max_length=64, unique=True, help_text="The libvirt network name.")
    bridge = models.CharField(max_length=15, help_text="The Linux bridge on the host.")
    subnet = models.CharField(max_length=18, help_text="CIDR; the gateway is its first address.")
    subnet_index = models.PositiveIntegerField(help_text="Which slice of the operator's range this is.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
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

    network = models.ForeignKey(TenantNetwork, on_delete=models.PROTECT, related_name="leases")
    desktop_id = models.BigIntegerField(unique=True)
    mac = models.CharField(max_length=17)
    ip = models.GenericIPAddressField(protocol="IPv4")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["network_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["network", "ip"], name="lease_unique_ip"),
            models.UniqueConstraint(fields=["network", "mac"], name="lease_unique_mac"),
        ]

    def __str__(self) -> str:
        return f"{self.ip} ({self.mac})"

    @property
    def filter_name(self) -> str:
        """The nwfilter of this desktop's interface (the network's random name keeps it unique)."""
        return f"{self.network.name}-d{self.desktop_id}"
