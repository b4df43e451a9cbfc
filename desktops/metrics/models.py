"""Time series of desktops and hosts: raw samples and their per-minute and per-hour rollups, and tenants' totals.

On PostgreSQL the two raw sample tables are partitioned by UTC day (desktops/metrics/partitions.py and the
partition_samples_by_day migration): their SQL primary key is (id, at), as partitioning requires, while Django
keeps `id` as the model's. Queries on them should bound `at` on both sides, so the planner reads only those days.

The tables were made when these models lived in the desktops app. They keep their names (db_table): the
move needed no DDL, and the code before and after it can run against the same database during a deploy.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from desktops.metrics.choices import Resolution
from tenants.querysets import TenantQuerySet


class DesktopSample(models.Model):
    """One raw reading of one running desktop, taken with all its host's desktops in one call."""

    desktop = models.ForeignKey(
        "desktops.Desktop", verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    host = models.ForeignKey(
        "hosts.Host", verbose_name=_("host"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    at = models.DateTimeField(verbose_name=_("taken at"))

    # Rates over the time since the previous reading; null for the first one (nothing to compare with).
    cpu_percent = models.FloatField(
        verbose_name=_("CPU usage"), null=True, help_text=_("Share of the desktop's own vCPUs, 0-100.")
    )
    disk_read_bps = models.FloatField(verbose_name=_("disk reads (bytes/s)"), null=True)
    disk_write_bps = models.FloatField(verbose_name=_("disk writes (bytes/s)"), null=True)
    net_rx_bps = models.FloatField(verbose_name=_("network received (bytes/s)"), null=True)
    net_tx_bps = models.FloatField(verbose_name=_("network sent (bytes/s)"), null=True)
    memory_used_mib = models.FloatField(verbose_name=_("memory used (MiB)"), default=0)
    memory_total_mib = models.FloatField(verbose_name=_("memory (MiB)"), default=0)
    vcpus = models.PositiveSmallIntegerField(verbose_name=_("vCPUs"), default=0)

    # Cumulative counters as libvirt reported them: the next reading's rates come from these.
    cpu_time_ns = models.BigIntegerField(verbose_name=_("CPU time (ns)"), default=0)
    disk_read_bytes = models.BigIntegerField(verbose_name=_("bytes read from disk"), default=0)
    disk_write_bytes = models.BigIntegerField(verbose_name=_("bytes written to disk"), default=0)
    net_rx_bytes = models.BigIntegerField(verbose_name=_("bytes received"), default=0)
    net_tx_bytes = models.BigIntegerField(verbose_name=_("bytes sent"), default=0)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("desktop sample")
        verbose_name_plural = _("desktop samples")
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

    desktop = models.ForeignKey(
        "desktops.Desktop", verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    resolution = models.CharField(verbose_name=_("resolution"), max_length=8, choices=Resolution.choices)
    bucket = models.DateTimeField(verbose_name=_("period start"), help_text=_("Start of the minute or hour (UTC)."))
    samples = models.PositiveIntegerField(verbose_name=_("samples"), default=0)
    vcpus = models.PositiveSmallIntegerField(verbose_name=_("vCPUs"), default=0)
    cpu_percent = models.FloatField(verbose_name=_("CPU usage"), null=True)
    cpu_percent_max = models.FloatField(verbose_name=_("peak CPU usage"), null=True)
    memory_used_mib = models.FloatField(verbose_name=_("memory used (MiB)"), null=True)
    memory_used_mib_max = models.FloatField(verbose_name=_("most memory used (MiB)"), null=True)
    disk_read_bps = models.FloatField(verbose_name=_("disk reads (bytes/s)"), null=True)
    disk_write_bps = models.FloatField(verbose_name=_("disk writes (bytes/s)"), null=True)
    net_rx_bps = models.FloatField(verbose_name=_("network received (bytes/s)"), null=True)
    net_tx_bps = models.FloatField(verbose_name=_("network sent (bytes/s)"), null=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("desktop rollup")
        verbose_name_plural = _("desktop rollups")
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


class TenantRollup(models.Model):
    """A tenant's totals over one minute or one hour: the sum of its desktops' rollups of that bucket.

    Written by the rollup beat right after the desktop rollups of the same buckets (desktops/metrics/rollups.py),
    so the tenant chart reads one row per bucket instead of adding up every desktop's rows at read time.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    resolution = models.CharField(verbose_name=_("resolution"), max_length=8, choices=Resolution.choices)
    bucket = models.DateTimeField(verbose_name=_("period start"), help_text=_("Start of the minute or hour (UTC)."))
    desktops = models.PositiveIntegerField(
        verbose_name=_("desktops"), default=0, help_text=_("Desktops that reported in this period.")
    )
    cpu_cores = models.FloatField(
        verbose_name=_("CPU cores used"), null=True, help_text=_("vCPUs' worth of time the desktops used.")
    )
    memory_used_mib = models.FloatField(verbose_name=_("memory used (MiB)"), null=True)
    disk_read_bps = models.FloatField(verbose_name=_("disk reads (bytes/s)"), null=True)
    disk_write_bps = models.FloatField(verbose_name=_("disk writes (bytes/s)"), null=True)
    net_rx_bps = models.FloatField(verbose_name=_("network received (bytes/s)"), null=True)
    net_tx_bps = models.FloatField(verbose_name=_("network sent (bytes/s)"), null=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("tenant rollup")
        verbose_name_plural = _("tenant rollups")
        ordering = ["bucket", "id"]
        constraints = [
            # Also the index of the chart's read: one tenant, one resolution, a range of buckets.
            models.UniqueConstraint(fields=["tenant", "resolution", "bucket"], name="tenantrollup_unique_bucket")
        ]
        # For the rollup's newest-bucket lookup and the retention's deletes, which span tenants.
        indexes = [models.Index(fields=["resolution", "bucket"], name="tenantrollup_bucket")]

    def __str__(self) -> str:
        return f"tenant {self.tenant_id} {self.resolution} {self.bucket:%Y-%m-%d %H:%M}"


class HostSample(models.Model):
    """One host's totals from one collection, with what the scheduler has placed on it."""

    host = models.ForeignKey(
        "hosts.Host", verbose_name=_("host"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    at = models.DateTimeField(verbose_name=_("taken at"))
    desktops = models.PositiveIntegerField(
        verbose_name=_("desktops"), default=0, help_text=_("Desktops with a running VM.")
    )
    cpu_percent = models.FloatField(
        verbose_name=_("CPU usage"), null=True, help_text=_("Share of the host's CPUs the desktops used.")
    )
    cpu_cores = models.FloatField(
        verbose_name=_("CPU cores used"), null=True, help_text=_("CPUs' worth of time the desktops used.")
    )
    memory_used_mib = models.FloatField(verbose_name=_("memory used (MiB)"), default=0)
    disk_read_bps = models.FloatField(verbose_name=_("disk reads (bytes/s)"), null=True)
    disk_write_bps = models.FloatField(verbose_name=_("disk writes (bytes/s)"), null=True)
    net_rx_bps = models.FloatField(verbose_name=_("network received (bytes/s)"), null=True)
    net_tx_bps = models.FloatField(verbose_name=_("network sent (bytes/s)"), null=True)
    # Copied from the Host row, so a chart shows allocation against capacity over time.
    cpus = models.PositiveIntegerField(verbose_name=_("CPUs"), default=0)
    memory_mib = models.PositiveBigIntegerField(verbose_name=_("memory (MiB)"), default=0)
    free_memory_mib = models.PositiveBigIntegerField(verbose_name=_("free memory (MiB)"), default=0)
    allocated_vcpus = models.PositiveIntegerField(verbose_name=_("allocated vCPUs"), default=0)
    vcpu_capacity = models.PositiveIntegerField(verbose_name=_("vCPU capacity"), default=0)
    allocated_memory_mib = models.PositiveBigIntegerField(verbose_name=_("allocated memory (MiB)"), default=0)
    memory_capacity_mib = models.PositiveBigIntegerField(verbose_name=_("memory capacity (MiB)"), default=0)
    # The whole host as libvirt's node calls see it (everything running on it, not only desktops);
    # null when the host could not say. The CPU counters let the next collection compute the rate.
    node_cpu_busy_ns = models.PositiveBigIntegerField(verbose_name=_("host CPU busy time (ns)"), null=True)
    node_cpu_total_ns = models.PositiveBigIntegerField(verbose_name=_("host CPU time (ns)"), null=True)
    node_cpu_percent = models.FloatField(
        verbose_name=_("host CPU usage"),
        null=True,
        help_text=_("Share of the host's CPU time in use since the last collection."),
    )
    node_memory_used_mib = models.FloatField(
        verbose_name=_("host memory used (MiB)"),
        null=True,
        help_text=_("Host memory in use (total minus free and cache)."),
    )
    node_disk_total_bytes = models.PositiveBigIntegerField(verbose_name=_("host disk size (bytes)"), null=True)
    node_disk_used_bytes = models.PositiveBigIntegerField(verbose_name=_("host disk used (bytes)"), null=True)

    class Meta:
        verbose_name = _("host sample")
        verbose_name_plural = _("host samples")
        db_table = "desktops_hostsample"
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["host", "at"], name="hostsample_host_at")]

    def __str__(self) -> str:
        return f"host {self.host_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class HostRollup(models.Model):
    """A host's totals summarised over one minute or one hour."""

    host = models.ForeignKey(
        "hosts.Host", verbose_name=_("host"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    resolution = models.CharField(verbose_name=_("resolution"), max_length=8, choices=Resolution.choices)
    bucket = models.DateTimeField(verbose_name=_("period start"), help_text=_("Start of the minute or hour (UTC)."))
    samples = models.PositiveIntegerField(verbose_name=_("samples"), default=0)
    desktops = models.FloatField(verbose_name=_("desktops"), null=True)
    cpu_percent = models.FloatField(verbose_name=_("CPU usage"), null=True)
    cpu_percent_max = models.FloatField(verbose_name=_("peak CPU usage"), null=True)
    cpu_cores = models.FloatField(verbose_name=_("CPU cores used"), null=True)
    memory_used_mib = models.FloatField(verbose_name=_("memory used (MiB)"), null=True)
    disk_read_bps = models.FloatField(verbose_name=_("disk reads (bytes/s)"), null=True)
    disk_write_bps = models.FloatField(verbose_name=_("disk writes (bytes/s)"), null=True)
    net_rx_bps = models.FloatField(verbose_name=_("network received (bytes/s)"), null=True)
    net_tx_bps = models.FloatField(verbose_name=_("network sent (bytes/s)"), null=True)
    allocated_vcpus = models.FloatField(verbose_name=_("allocated vCPUs"), null=True)
    vcpu_capacity = models.FloatField(verbose_name=_("vCPU capacity"), null=True)
    allocated_memory_mib = models.FloatField(verbose_name=_("allocated memory (MiB)"), null=True)
    memory_capacity_mib = models.FloatField(verbose_name=_("memory capacity (MiB)"), null=True)

    class Meta:
        verbose_name = _("host rollup")
        verbose_name_plural = _("host rollups")
        db_table = "desktops_hostrollup"
        ordering = ["bucket", "id"]
        constraints = [
            models.UniqueConstraint(fields=["host", "resolution", "bucket"], name="hostrollup_unique_bucket")
        ]
        indexes = [models.Index(fields=["resolution", "bucket"], name="hostrollup_bucket")]

    def __str__(self) -> str:
        return f"host {self.host_id} {self.resolution} {self.bucket:%Y-%m-%d %H:%M}"
