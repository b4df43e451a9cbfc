"""Rollups (raw → per minute → per hour, then each tenant's totals) and pruning past each resolution's retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Avg, Count, Max, Min, Model, QuerySet, Sum
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from desktops.metrics import conf, partitions
from desktops.metrics.choices import Resolution
from desktops.metrics.models import DesktopRollup, DesktopSample, HostRollup, HostSample, TenantRollup
from hosts.models import Host

STEP = {Resolution.MINUTE: timedelta(minutes=1), Resolution.HOUR: timedelta(hours=1)}
# Each run redoes the last buckets it wrote too: a collection that committed late still lands in them.
OVERLAP = {Resolution.MINUTE: timedelta(minutes=3), Resolution.HOUR: timedelta(hours=2)}
# Work in slices so a first run over a day of raw samples never holds it all in memory at once.
SLICE = {Resolution.MINUTE: timedelta(hours=1), Resolution.HOUR: timedelta(days=1)}
PRUNE_BATCH = 10_000

_DESKTOP_FIELDS = [
    "tenant_id",
    "samples",
    "vcpus",
    "cpu_percent",
    "cpu_percent_max",
    "memory_used_mib",
    "memory_used_mib_max",
    "disk_read_bps",
    "disk_write_bps",
    "net_rx_bps",
    "net_tx_bps",
]
_HOST_FIELDS = [
    "samples",
    "desktops",
    "cpu_percent",
    "cpu_percent_max",
    "cpu_cores",
    "memory_used_mib",
    "disk_read_bps",
    "disk_write_bps",
    "net_rx_bps",
    "net_tx_bps",
    "allocated_vcpus",
    "vcpu_capacity",
    "allocated_memory_mib",
    "memory_capacity_mib",
]


@dataclass(frozen=True)
class RollupResult:
    desktop_minutes: int
    desktop_hours: int
    host_minutes: int
    host_hours: int
    # Tenant buckets written (inserted or updated), each the sum of that tenant's desktop rollups.
    tenant_minutes: int = 0
    tenant_hours: int = 0


@dataclass(frozen=True)
class PruneResult:
    # Raw rows deleted one by one (SQLite, and strays in PostgreSQL's default partitions); whole days go as
    # dropped partitions, whose rows are not counted (counting a day would read it just to throw it away).
    desktop_samples: int
    desktop_rollups: int
    host_samples: int
    host_rollups: int
    dropped_partitions: tuple[str, ...] = ()
    tenant_rollups: int = 0


def floor(at: datetime, resolution: str) -> datetime:
    """The start of the UTC minute or hour containing `at`."""
    at = at.astimezone(UTC).replace(second=0, microsecond=0)
    return at.replace(minute=0) if resolution == Resolution.HOUR else at


def _window(model: type[Model], source: QuerySet, field: str, resolution: str, now: datetime):
    """[start, end): from just before the newest bucket written (else the oldest source row) through the open one."""
    # The open bucket is written too (and rewritten on the next run), so charts reach the present.
    end = floor(now, resolution) + STEP[resolution]
    newest = model.objects.filter(resolution=resolution).aggregate(m=Max("bucket"))["m"]
    if newest is not None:
        start = newest - OVERLAP[resolution]
    else:
        oldest = source.aggregate(m=Min(field))["m"]
        if oldest is None:
            return None
        start = floor(oldest, resolution)
    return start, end


def _slices(window: tuple[datetime, datetime], resolution: str):
    start, end = window
    while start < end:
        stop = min(end, start + SLICE[resolution])
        yield start, stop
        start = stop


def _upsert(model: type[Model], rows: list[Model], key: str, fields: list[str]) -> int:
    if rows:
        model.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=[key, "resolution", "bucket"], update_fields=fields
        )
    return len(rows)


def _desktop_minutes(start: datetime, end: datetime) -> int:
    groups = (
        DesktopSample.objects.filter(at__gte=start, at__lt=end)
        .annotate(b=TruncMinute("at", tzinfo=UTC))
        .values("desktop_id", "b")
        .annotate(
            t=Max("tenant_id"),
            n=Count("id"),
            v=Max("vcpus"),
            cpu=Avg("cpu_percent"),
            cpu_max=Max("cpu_percent"),
            mem=Avg("memory_used_mib"),
            mem_max=Max("memory_used_mib"),
            rd=Avg("disk_read_bps"),
            wr=Avg("disk_write_bps"),
            rx=Avg("net_rx_bps"),
            tx=Avg("net_tx_bps"),
        )
    )
    rows = [_desktop_rollup(g, Resolution.MINUTE, g["n"]) for g in groups]
    return _upsert(DesktopRollup, rows, "desktop", _DESKTOP_FIELDS)


def _desktop_hours(start: datetime, end: datetime) -> int:
    # Minutes carry about the same number of samples each, so the mean of their means is close enough.
    groups = (
        DesktopRollup.objects.filter(resolution=Resolution.MINUTE, bucket__gte=start, bucket__lt=end)
        .annotate(b=TruncHour("bucket", tzinfo=UTC))
        .values("desktop_id", "b")
        .annotate(
            t=Max("tenant_id"),
            v=Max("vcpus"),
            cpu=Avg("cpu_percent"),
            cpu_max=Max("cpu_percent_max"),
            mem=Avg("memory_used_mib"),
            mem_max=Max("memory_used_mib_max"),
            rd=Avg("disk_read_bps"),
            wr=Avg("disk_write_bps"),
            rx=Avg("net_rx_bps"),
            tx=Avg("net_tx_bps"),
        )
    )
    samples = _sample_counts(DesktopRollup, "desktop_id", start, end)
    rows = [_desktop_rollup(g, Resolution.HOUR, samples.get((g["desktop_id"], g["b"]), 0)) for g in groups]
    return _upsert(DesktopRollup, rows, "desktop", _DESKTOP_FIELDS)


def _desktop_rollup(group: dict, resolution: str, samples: int) -> DesktopRollup:
    """One desktop's rollup row from an aggregated group (minute or hour)."""
    return DesktopRollup(
        desktop_id=group["desktop_id"],
        tenant_id=group["t"],
        resolution=resolution,
        bucket=group["b"],
        samples=samples,
        vcpus=group["v"],
        cpu_percent=group["cpu"],
        cpu_percent_max=group["cpu_max"],
        memory_used_mib=group["mem"],
        memory_used_mib_max=group["mem_max"],
        disk_read_bps=group["rd"],
        disk_write_bps=group["wr"],
        net_rx_bps=group["rx"],
        net_tx_bps=group["tx"],
    )


def _sample_counts(model: type[Model], key: str, start: datetime, end: datetime) -> dict:
    """Raw samples behind each hour: the sum of its minutes' counts."""
    rows = (
        model.objects.filter(resolution=Resolution.MINUTE, bucket__gte=start, bucket__lt=end)
        .annotate(b=TruncHour("bucket", tzinfo=UTC))
        .values(key, "b")
        .annotate(s=Sum("samples"))
    )
    return {(r[key], r["b"]): r["s"] for r in rows}


# What the tenant chart shows per bucket (queries.TENANT_FIELDS), summed over the tenant's desktop rollups.
_TENANT_SUMS = {
    "desktops": "COUNT(*)",
    "cpu_cores": "SUM(cpu_percent * vcpus / 100.0)",
    "memory_used_mib": "SUM(memory_used_mib)",
    "disk_read_bps": "SUM(disk_read_bps)",
    "disk_write_bps": "SUM(disk_write_bps)",
    "net_rx_bps": "SUM(net_rx_bps)",
    "net_tx_bps": "SUM(net_tx_bps)",
}


def _tenant_rollups(resolution: str, start: datetime, end: datetime) -> int:
    """Every tenant's totals of the buckets in [start, end), from its desktop rollups: one upsert, idempotent."""
    desktop_table = connection.ops.quote_name(DesktopRollup._meta.db_table)
    tenant_table = connection.ops.quote_name(TenantRollup._meta.db_table)
    columns = ", ".join(_TENANT_SUMS)
    params = [
        resolution,
        connection.ops.adapt_datetimefield_value(start),
        connection.ops.adapt_datetimefield_value(end),
    ]
    with connection.cursor() as cursor:
        # Recomputed from scratch each time, so a desktop rollup that a late sample changed changes its tenant's
        # too. "WHERE" before "ON CONFLICT" is what SQLite needs to parse an INSERT ... SELECT upsert.
        cursor.execute(
            f"INSERT INTO {tenant_table} (tenant_id, resolution, bucket, {columns})"
            f" SELECT tenant_id, resolution, bucket, {', '.join(_TENANT_SUMS.values())} FROM {desktop_table}"
            " WHERE resolution = %s AND bucket >= %s AND bucket < %s"
            " GROUP BY tenant_id, resolution, bucket"
            " ON CONFLICT (tenant_id, resolution, bucket) DO UPDATE SET "
            + ", ".join(f"{name} = EXCLUDED.{name}" for name in _TENANT_SUMS),
            params,
        )
        written = cursor.rowcount
        # A bucket none of whose desktop rollups is left (their desktops were deleted) is no total any more.
        cursor.execute(
            f"DELETE FROM {tenant_table} WHERE resolution = %s AND bucket >= %s AND bucket < %s AND NOT EXISTS"
            f" (SELECT 1 FROM {desktop_table} d WHERE d.tenant_id = {tenant_table}.tenant_id"
            f" AND d.resolution = {tenant_table}.resolution AND d.bucket = {tenant_table}.bucket)",
            params,
        )
    return max(written, 0)


def _tenant_minutes(start: datetime, end: datetime) -> int:
    return _tenant_rollups(Resolution.MINUTE, start, end)


def _tenant_hours(start: datetime, end: datetime) -> int:
    return _tenant_rollups(Resolution.HOUR, start, end)


def _host_rollups(source: QuerySet, time_field: str, resolution: str, trunc, start: datetime, end: datetime) -> int:
    from_raw = resolution == Resolution.MINUTE
    groups = (
        source.filter(**{f"{time_field}__gte": start, f"{time_field}__lt": end})
        .annotate(b=trunc(time_field, tzinfo=UTC))
        .values("host_id", "b")
        .annotate(
            n=Count("id"),
            d=Avg("desktops"),
            cpu=Avg("cpu_percent"),
            cpu_max=Max("cpu_percent" if from_raw else "cpu_percent_max"),
            cores=Avg("cpu_cores"),
            mem=Avg("memory_used_mib"),
            rd=Avg("disk_read_bps"),
            wr=Avg("disk_write_bps"),
            rx=Avg("net_rx_bps"),
            tx=Avg("net_tx_bps"),
            av=Avg("allocated_vcpus"),
            vc=Avg("vcpu_capacity"),
            am=Avg("allocated_memory_mib"),
            mc=Avg("memory_capacity_mib"),
        )
    )
    samples = {} if from_raw else _sample_counts(HostRollup, "host_id", start, end)
    rows = [
        HostRollup(
            host_id=g["host_id"],
            resolution=resolution,
            bucket=g["b"],
            samples=g["n"] if from_raw else samples.get((g["host_id"], g["b"]), 0),
            desktops=g["d"],
            cpu_percent=g["cpu"],
            cpu_percent_max=g["cpu_max"],
            cpu_cores=g["cores"],
            memory_used_mib=g["mem"],
            disk_read_bps=g["rd"],
            disk_write_bps=g["wr"],
            net_rx_bps=g["rx"],
            net_tx_bps=g["tx"],
            allocated_vcpus=g["av"],
            vcpu_capacity=g["vc"],
            allocated_memory_mib=g["am"],
            memory_capacity_mib=g["mc"],
        )
        for g in groups
    ]
    return _upsert(HostRollup, rows, "host", _HOST_FIELDS)


def _run(model: type[Model], source: QuerySet, field: str, resolution: str, now: datetime, build) -> int:
    window = _window(model, source, field, resolution, now)
    written = 0
    if window is not None:
        for start, end in _slices(window, resolution):
            with transaction.atomic():
                written += build(start, end)
    return written


def _host_minutes(start: datetime, end: datetime) -> int:
    return _host_rollups(HostSample.objects.all(), "at", Resolution.MINUTE, TruncMinute, start, end)


def _host_hours(start: datetime, end: datetime) -> int:
    return _host_rollups(_minutes(HostRollup), "bucket", Resolution.HOUR, TruncHour, start, end)


def rollup(*, now: datetime | None = None) -> RollupResult:
    """Summarise minutes from raw samples, then hours from minutes; idempotent, and catches up after a gap.

    After each resolution's desktop rollups, the tenants' totals of the same buckets. Their window runs from just
    before the newest tenant bucket written, which is never after the newest desktop bucket the desktop pass started
    from, so it covers every bucket that pass rewrote; with no tenant rollup yet (the first run after the upgrade)
    it starts at the oldest desktop rollup, so the tenant chart keeps its history.
    """
    now = now or timezone.now()
    # Minutes first: the hours are built from them.
    desktop_minutes = _run(DesktopRollup, DesktopSample.objects.all(), "at", Resolution.MINUTE, now, _desktop_minutes)
    tenant_minutes = _run(TenantRollup, _minutes(DesktopRollup), "bucket", Resolution.MINUTE, now, _tenant_minutes)
    desktop_hours = _run(DesktopRollup, _minutes(DesktopRollup), "bucket", Resolution.HOUR, now, _desktop_hours)
    tenant_hours = _run(TenantRollup, _hours(DesktopRollup), "bucket", Resolution.HOUR, now, _tenant_hours)
    host_minutes = _run(HostRollup, HostSample.objects.all(), "at", Resolution.MINUTE, now, _host_minutes)
    host_hours = _run(HostRollup, _minutes(HostRollup), "bucket", Resolution.HOUR, now, _host_hours)
    return RollupResult(
        desktop_minutes=desktop_minutes,
        desktop_hours=desktop_hours,
        host_minutes=host_minutes,
        host_hours=host_hours,
        tenant_minutes=tenant_minutes,
        tenant_hours=tenant_hours,
    )


def _minutes(model: type[Model]) -> QuerySet:
    return model._default_manager.filter(resolution=Resolution.MINUTE)


def _hours(model: type[Model]) -> QuerySet:
    return model._default_manager.filter(resolution=Resolution.HOUR)


def _prune_rollups(model: type[Model], minute_cutoff: datetime, hour_cutoff: datetime) -> int:
    """Delete a rollup table's minutes and hours past their retention; how many rows went."""
    return _delete_before(_minutes(model), "bucket", minute_cutoff) + _delete_before(
        _hours(model), "bucket", hour_cutoff
    )


def _delete_before(queryset: QuerySet, field: str, cutoff: datetime) -> int:
    """Delete rows older than cutoff in batches, so no statement locks a day of rows at once."""
    deleted = 0
    while True:
        ids = list(queryset.filter(**{f"{field}__lt": cutoff}).order_by().values_list("pk", flat=True)[:PRUNE_BATCH])
        if not ids:
            return deleted
        # The time bound again, so on partitioned tables the delete looks only where the rows can be.
        deleted += queryset.model.objects.filter(pk__in=ids, **{f"{field}__lt": cutoff}).delete()[0]


def raw_cutoff(now: datetime) -> datetime:
    """Raw samples before this go: the start of the UTC day the retention reaches into.

    Raw samples go a whole UTC day at a time (PostgreSQL drops the day's partition), so each is kept at least
    METRICS_RAW_RETENTION_H and at most a day longer; SQLite deletes on the same boundary, so both keep the same.
    """
    reach = (now - timedelta(hours=conf.raw_retention_h())).astimezone(UTC)
    return partitions.day_start(reach.date())


def prune(*, now: datetime | None = None) -> PruneResult:
    """Drop raw samples, minute and hour rollups (of desktops, tenants and hosts) past their retention."""
    now = now or timezone.now()
    samples_cutoff = raw_cutoff(now)
    minute_cutoff = now - timedelta(days=conf.minute_retention_d())
    hour_cutoff = now - timedelta(days=conf.hour_retention_d())
    dropped = partitions.drop_before(samples_cutoff)
    desktop_samples = host_samples = 0
    # What is left before the cutoff: every row on SQLite, on PostgreSQL only the default partitions' strays.
    # Per host, so each delete walks the (host, at) index instead of the whole table.
    for host_id in Host.objects.values_list("pk", flat=True):
        desktop_samples += _delete_before(DesktopSample.objects.filter(host_id=host_id), "at", samples_cutoff)
        host_samples += _delete_before(HostSample.objects.filter(host_id=host_id), "at", samples_cutoff)
    desktop_rollups = _prune_rollups(DesktopRollup, minute_cutoff, hour_cutoff)
    host_rollups = _prune_rollups(HostRollup, minute_cutoff, hour_cutoff)
    # Tenant totals keep as long as the desktop rollups they sum: a chart never shows a total without its parts.
    tenant_rollups = _prune_rollups(TenantRollup, minute_cutoff, hour_cutoff)
    return PruneResult(
        desktop_samples=desktop_samples,
        desktop_rollups=desktop_rollups,
        host_samples=host_samples,
        host_rollups=host_rollups,
        dropped_partitions=tuple(dropped),
        tenant_rollups=tenant_rollups,
    )
