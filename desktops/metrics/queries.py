"""Chart series for a desktop, a tenant and a host, at the resolution a time range calls for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Model
from django.utils import timezone

from desktops.metrics import conf, live
from desktops.metrics.choices import Resolution
from desktops.metrics.models import DesktopRollup, DesktopSample, HostRollup, HostSample, TenantRollup
from desktops.models import Desktop
from hosts.models import Host


@dataclass(frozen=True)
class Range:
    """A chart range and the resolutions that keep it to a few hundred points."""

    span: timedelta
    resolution: Resolution
    # Tenant totals add up desktops on different hosts, whose raw timestamps never line up.
    tenant_resolution: Resolution


RANGES: dict[str, Range] = {
    "15m": Range(timedelta(minutes=15), Resolution.RAW, Resolution.MINUTE),
    "1h": Range(timedelta(hours=1), Resolution.RAW, Resolution.MINUTE),
    "6h": Range(timedelta(hours=6), Resolution.MINUTE, Resolution.MINUTE),
    "24h": Range(timedelta(hours=24), Resolution.MINUTE, Resolution.MINUTE),
    "7d": Range(timedelta(days=7), Resolution.HOUR, Resolution.HOUR),
    "30d": Range(timedelta(days=30), Resolution.HOUR, Resolution.HOUR),
    "90d": Range(timedelta(days=90), Resolution.HOUR, Resolution.HOUR),
}
DEFAULT_RANGE = "1h"
STEP_S = {Resolution.MINUTE: 60, Resolution.HOUR: 3600}

DESKTOP_FIELDS = (
    "cpu_percent",
    "memory_used_mib",
    "disk_read_bps",
    "disk_write_bps",
    "net_rx_bps",
    "net_tx_bps",
)
TENANT_FIELDS = (
    "desktops",
    "cpu_cores",
    "memory_used_mib",
    "disk_read_bps",
    "disk_write_bps",
    "net_rx_bps",
    "net_tx_bps",
)
HOST_FIELDS = (
    "desktops",
    "cpu_percent",
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
)


@dataclass
class Series:
    """Columns of a chart: `t` (seconds since the epoch) and one list per figure, nulls for gaps."""

    range: str
    resolution: str
    step_s: float
    start: datetime
    end: datetime
    columns: dict[str, list] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "range": self.range,
            "resolution": self.resolution,
            "step_s": self.step_s,
            "start": live.epoch(self.start),
            "end": live.epoch(self.end),
            **self.columns,
        }


def _columns(rows: list[dict], time_key: str, fields: tuple[str, ...]) -> dict[str, list]:
    columns: dict[str, list] = {"t": [live.epoch(row[time_key]) for row in rows]}
    for name in fields:
        columns[name] = [None if row[name] is None else round(row[name], 2) for row in rows]
    return columns


def _series(key: str, resolution: Resolution, now: datetime | None) -> Series:
    end = now or timezone.now()
    step = conf.interval_s() if resolution == Resolution.RAW else STEP_S[resolution]
    return Series(range=key, resolution=resolution, step_s=step, start=end - RANGES[key].span, end=end)


def _recorded_series(
    *,
    samples: type[Model],
    rollups: type[Model],
    owner: dict[str, object],
    fields: tuple[str, ...],
    range_key: str,
    now: datetime | None,
) -> Series:
    """One owner's (desktop's or host's) figures: raw samples for short ranges, rollups beyond."""
    resolution = RANGES[range_key].resolution
    series = _series(range_key, resolution, now)
    if resolution == Resolution.RAW:
        rows = samples.objects.filter(**owner, at__gte=series.start, at__lte=series.end).order_by("at")
        time_key = "at"
    else:
        rows = rollups.objects.filter(
            **owner, resolution=resolution, bucket__gte=series.start, bucket__lte=series.end
        ).order_by("bucket")
        time_key = "bucket"
    series.columns = _columns(list(rows.values(time_key, *fields)), time_key, fields)
    return series


def desktop_series(*, desktop: Desktop, range_key: str, now: datetime | None = None) -> Series:
    """One desktop's CPU %, memory and I/O over the range."""
    return _recorded_series(
        samples=DesktopSample,
        rollups=DesktopRollup,
        owner={"desktop": desktop},
        fields=DESKTOP_FIELDS,
        range_key=range_key,
        now=now,
    )


def tenant_series(*, tenant, range_key: str, now: datetime | None = None) -> Series:
    """A tenant's totals: desktops reporting, vCPUs' worth of CPU in use, memory and I/O.

    One TenantRollup row per bucket, which the rollup beat sums from the tenant's desktop rollups.
    """
    resolution = RANGES[range_key].tenant_resolution
    series = _series(range_key, resolution, now)
    rows = (
        TenantRollup.objects.for_tenant(tenant)
        .filter(resolution=resolution, bucket__gte=series.start, bucket__lte=series.end)
        .order_by("bucket")
        .values("bucket", *TENANT_FIELDS)
    )
    series.columns = _columns(list(rows), "bucket", TENANT_FIELDS)
    return series


def host_series(*, host: Host, range_key: str, now: datetime | None = None) -> Series:
    """A host's totals and its allocation against capacity over the range."""
    return _recorded_series(
        samples=HostSample, rollups=HostRollup, owner={"host": host}, fields=HOST_FIELDS, range_key=range_key, now=now
    )


def latest_host_samples(*, max_age_s: float | None = None, now: datetime | None = None) -> list[HostSample]:
    """Each host's newest sample, if recent enough to still be the truth (for dashboards and /metrics)."""
    now = now or timezone.now()
    max_age = timedelta(seconds=max_age_s if max_age_s is not None else max(60.0, 6 * conf.interval_s()))
    latest = []
    for host_id in Host.objects.values_list("pk", flat=True):
        # Bounded on both sides, so on PostgreSQL the plan reads only the partitions of these seconds.
        sample = HostSample.objects.filter(host_id=host_id, at__gte=now - max_age, at__lte=now).order_by("-at").first()
        if sample is not None:
            latest.append(sample)
    return latest


def latest_desktop_samples(host_samples: list[HostSample]) -> list[DesktopSample]:
    """The desktop readings taken with each of these host samples."""
    rows: list[DesktopSample] = []
    for sample in host_samples:
        rows.extend(DesktopSample.objects.filter(host_id=sample.host_id, at=sample.at).order_by("desktop_id"))
    return rows
