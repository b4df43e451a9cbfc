"""Time series of desktops and hosts: raw samples and their per-minute and per-hour rollups.

On PostgreSQL the two raw sample tables are partitioned by UTC day (desktops/metrics/partitions.py and the
partition_samples_by_day migration): their SQL primary key is (id, at), as partitioning requires, while Django
keeps `id` as the model's. Queries on them should bound `at` on both sides, so the planner reads only those days.

The tables were made when these models lived in the desktops app. They keep their names (db_table): the
move needed no DDL, and the code before and after it can run against the same database during a deploy.
"""

from __future__ import annotations

from django.db import models

from desktops.metrics.choices import Resolution
from tenants.querysets import TenantQuerySet


class DesktopSample(models.Model):
    """One raw reading of one running desktop, taken with all its host's desktops in one call."""

    desktop = models.ForeignKey("desktops.Desktop", on_delete=models.CASCADE, related_name="+", db_index=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+", db_index=False)
    at = models.DateTimeField()

    # Rates over the time since the previous reading; null for the first one (nothing to compare with).
    cpu_percent = models.FloatField(null=True, help_text="Share of the desktop's own vCPUs, 0-100.")
    disk_read_bps = models.FloatField(null=True)
    disk_write_bps = models.FloatField(null=True)
    net_rx_bps = models.FloatField(null=True)
    net_tx_bps = models.FloatField(null=True)
    memory_used_mib = models.FloatField(default=0)
    memory_total_mib = models.FloatField(default=0)
    vcpus = models.PositiveSmallIntegerField(default=0)

    # Cumulative counters as libvirt reported them: the next reading's rates come from these.
    cpu_time_ns = models.BigIntegerField(default=0)
    disk_read_bytes = models.BigIntegerField(default=0)
    disk_write_bytes = models.BigIntegerField(default=0)
    net_rx_bytes = models.BigIntegerField(default=0)
    net_tx_bytes = models.BigIntegerField(default=0)

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "desktops_desktopsample"
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["desktop", "at"], name="desktopsample_desktop_at"),
            # One host's readings share one timestamp: the previous collection is one indexed lookup.
            models.Index(fields=["host", "at"], name="desktopsample_host_at"),
        ]

    def __str__(self) -> str:
        return f"desktop {self.desktop_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class DesktopRollup(models.Model):
    """A desktop's readings summarised over one minute or one hour."""

    desktop = models.ForeignKey("desktops.Desktop", on_delete=models.CASCADE, related_name="+", db_index=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    bucket = models.DateTimeField(help_text="Start of the minute or hour (UTC).")
    samples = models.PositiveIntegerField(default=0)
    vcpus = models.PositiveSmallIntegerField(default=0)
    cpu_percent = models.FloatField(null=True)
    cpu_percent_max = models.FloatField(null=True)
    memory_used_mib = models.FloatField(null=True)
    memory_used_mib_max = models.FloatField(null=True)
    disk_read_bps = models.FloatField(null=True)
    disk_write_bps = models.FloatField(null=True)
    net_rx_bps = models.FloatField(null=True)
    net_tx_bps = models.FloatField(null=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "desktops_desktoprollup"
        ordering = ["bucket", "id"]
        constraints = [
            models.UniqueConstraint(fields=["desktop", "resolution", "bucket"], name="desktoprollup_unique_bucket")
        ]
        indexes = [
            models.Index(fields=["tenant", "resolution", "bucket"], name="desktoprollup_tenant_bucket"),
            models.Index(fields=["resolution", "bucket"], name="desktoprollup_bucket"),
        ]

    def __str__(self) -> str:
        return f"desktop {self.desktop_id} {self.resolution} {self.bucket:%Y-%m-%d %H:%M}"


class HostSample(models.Model):
    """One host's totals from one collection, with what the scheduler has placed on it."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+", db_index=False)
    at = models.DateTimeField()
    desktops = models.PositiveIntegerField(default=0, help_text="Desktops with a running VM.")
    cpu_percent = models.FloatField(null=True, help_text="Share of the host's CPUs the desktops used.")
    cpu_cores = models.FloatField(null=True, help_text="CPUs' worth of time the desktops used.")
    memory_used_mib = models.FloatField(default=0)
    disk_read_bps = models.FloatField(null=True)
    disk_write_bps = models.FloatField(null=True)
    net_rx_bps = models.FloatField(null=True)
    net_tx_bps = models.FloatField(null=True)
    # Copied from the Host row, so a chart shows allocation against capacity over time.
    cpus = models.PositiveIntegerField(default=0)
    memory_mib = models.PositiveBigIntegerField(default=0)
    free_memory_mib = models.PositiveBigIntegerField(default=0)
    allocated_vcpus = models.PositiveIntegerField(default=0)
    vcpu_capacity = models.PositiveIntegerField(default=0)
    allocated_memory_mib = models.PositiveBigIntegerField(default=0)
    memory_capacity_mib = models.PositiveBigIntegerField(default=0)
    # The whole host as libvirt's node calls see it (everything running on it, not only desktops);
    # null when the host could not say. The CPU counters let the next collection compute the rate.
    node_cpu_busy_ns = models.PositiveBigIntegerField(null=True)
    node_cpu_total_ns = models.PositiveBigIntegerField(null=True)
    node_cpu_percent = models.FloatField(
        null=True, help_text="Share of the host's CPU time in use since the last collection."
    )
    node_memory_used_mib = models.FloatField(null=True, help_text="Host memory in use (total minus free and cache).")
    node_disk_total_bytes = models.PositiveBigIntegerField(null=True)
    node_disk_used_bytes = models.PositiveBigIntegerField(null=True)

    class Meta:
        db_table = "desktops_hostsample"
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["host", "at"], name="hostsample_host_at")]

    def __str__(self) -> str:
        return f"host {self.host_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class HostRollup(models.Model):
    """A host's totals summarised over one minute or one hour."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+", db_index=False)
    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    bucket = models.DateTimeField(help_text="Start of the minute or hour (UTC).")
    samples = models.PositiveIntegerField(default=0)
    desktops = models.FloatField(null=True)
    cpu_percent = models.FloatField(null=True)
    cpu_percent_max = models.FloatField(null=True)
    cpu_cores = models.FloatField(null=True)
    memory_used_mib = models.FloatField(null=True)
    disk_read_bps = models.FloatField(null=True)
    disk_write_bps = models.FloatField(null=True)
    net_rx_bps = models.FloatField(null=True)
    net_tx_bps = models.FloatField(null=True)
    allocated_vcpus = models.FloatField(null=True)
    vcpu_capacity = models.FloatField(null=True)
    allocated_memory_mib = models.FloatField(null=True)
    memory_capacity_mib = models.FloatField(null=True)

    class Meta:
        db_table = "desktops_hostrollup"
        ordering = ["bucket", "id"]
        constraints = [
            models.UniqueConstraint(fields=["host", "resolution", "bucket"], name="hostrollup_unique_bucket")
        ]
        indexes = [models.Index(fields=["resolution", "bucket"], name="hostrollup_bucket")]

    def __str__(self) -> str:
        return f"host {self.host_id} {self.resolution} {self.bucket:%Y-%m-%d %H:%M}"
