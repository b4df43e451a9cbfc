"""Rollups on a frozen clock: raw → per minute → per hour, idempotent, catching up, and pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from desktops.metrics.choices import Resolution
from desktops.metrics.models import DesktopRollup, DesktopSample, HostRollup, HostSample
from desktops.metrics.rollups import prune, rollup
from desktops.models import Desktop
from desktops.tests.factories import DesktopFactory

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STEP = timedelta(seconds=5)


@pytest.fixture
def desk(alice, host, template) -> Desktop:
    return DesktopFactory(world=alice, template=template, host=host)


def fill(desk: Desktop, start: datetime, minutes: int) -> None:
    """Samples every 5 s: CPU 0, 5, ..., 55 % within each minute; memory = the minute's index from T0."""
    desktop_rows, host_rows = [], []
    for m in range(minutes):
        minute_start = start + timedelta(minutes=m)
        index = int((minute_start - T0).total_seconds() // 60)
        for k in range(12):
            at = minute_start + k * STEP
            desktop_rows.append(
                DesktopSample(
                    desktop=desk,
                    tenant_id=desk.tenant_id,
                    host_id=desk.host_id,
                    at=at,
                    cpu_percent=k * 5.0,
                    memory_used_mib=float(index),
                    disk_read_bps=100.0,
                    vcpus=2,
                )
            )
            host_rows.append(
                HostSample(host_id=desk.host_id, at=at, desktops=1, cpu_percent=k * 1.0, allocated_vcpus=2)
            )
    DesktopSample.objects.bulk_create(desktop_rows)
    HostSample.objects.bulk_create(host_rows)


def minute(at: datetime) -> DesktopRollup:
    return DesktopRollup.objects.get(resolution=Resolution.MINUTE, bucket=at)


def hour(at: datetime) -> DesktopRollup:
    return DesktopRollup.objects.get(resolution=Resolution.HOUR, bucket=at)


def test_it_rolls_raw_samples_into_minutes_and_minutes_into_hours(desk):
    # Given two hours of raw samples, 10:00 to 11:59:55
    fill(desk, T0, 120)
    # When the rollup runs at 12:00:30
    result = rollup(now=T0 + timedelta(hours=2, seconds=30))
    # Then there is one row per minute and per hour, for the desktop and for the host
    assert (result.desktop_minutes, result.desktop_hours) == (120, 2)
    assert (result.host_minutes, result.host_hours) == (120, 2)
    # And a minute holds the mean and peak of its 12 samples
    seventh = minute(T0 + timedelta(minutes=7))
    assert (seventh.samples, seventh.vcpus, seventh.tenant_id) == (12, 2, desk.tenant_id)
    assert (seventh.cpu_percent, seventh.cpu_percent_max) == (pytest.approx(27.5), 55.0)
    assert (seventh.memory_used_mib, seventh.disk_read_bps) == (7.0, 100.0)
    # And an hour holds its minutes: 720 samples, the same mean and peak, memory averaged over minutes
    eleven = hour(T0 + timedelta(hours=1))
    assert (eleven.samples, eleven.cpu_percent, eleven.cpu_percent_max) == (720, pytest.approx(27.5), 55.0)
    assert eleven.memory_used_mib == pytest.approx(89.5) and eleven.memory_used_mib_max == 119.0
    host_hour = HostRollup.objects.get(resolution=Resolution.HOUR, bucket=T0)
    assert (host_hour.samples, host_hour.cpu_percent, host_hour.cpu_percent_max) == (720, pytest.approx(5.5), 11.0)
    assert host_hour.allocated_vcpus == 2.0


def test_it_is_idempotent_and_takes_in_late_samples(desk):
    fill(desk, T0, 120)
    now = T0 + timedelta(hours=2, seconds=30)
    rollup(now=now)
    # When it runs again: nothing is doubled
    rollup(now=now)
    assert DesktopRollup.objects.filter(resolution=Resolution.MINUTE).count() == 120
    assert DesktopRollup.objects.filter(resolution=Resolution.HOUR).count() == 2
    assert minute(T0 + timedelta(minutes=119)).samples == 12
    # When a collection that committed late adds a sample to the last minute, the next run counts it
    DesktopSample.objects.create(
        desktop=desk, tenant_id=desk.tenant_id, host_id=desk.host_id, at=T0 + timedelta(minutes=119, seconds=58),
        cpu_percent=100.0, memory_used_mib=119.0, vcpus=2,
    )  # fmt: skip
    rollup(now=now)
    last = minute(T0 + timedelta(minutes=119))
    assert (last.samples, last.cpu_percent_max) == (13, 100.0)
    assert (hour(T0 + timedelta(hours=1)).samples, hour(T0 + timedelta(hours=1)).cpu_percent_max) == (721, 100.0)


def test_it_writes_the_open_minute_and_hour_so_charts_reach_the_present(desk):
    fill(desk, T0, 3)
    # When the rollup runs in the middle of the third minute (samples so far: two and a half minutes' worth)
    rollup(now=T0 + timedelta(minutes=2, seconds=59))
    # Then the open minute and the open hour exist already, and are completed by the next run
    assert minute(T0 + timedelta(minutes=2)).samples == 12
    assert hour(T0).samples == 36
    fill(desk, T0 + timedelta(minutes=3), 1)
    rollup(now=T0 + timedelta(minutes=4, seconds=1))
    assert hour(T0).samples == 48


def test_it_catches_up_after_the_rollup_did_not_run_for_a_while(desk):
    fill(desk, T0, 10)
    rollup(now=T0 + timedelta(minutes=10, seconds=5))
    # Given three hours in which the beat was down while collections went on
    fill(desk, T0 + timedelta(minutes=10), 180)
    # When the rollup runs again, it covers every minute and hour since the last one it wrote
    rollup(now=T0 + timedelta(hours=3, minutes=10, seconds=5))
    assert DesktopRollup.objects.filter(resolution=Resolution.MINUTE).count() == 190
    assert [h.samples for h in DesktopRollup.objects.filter(resolution=Resolution.HOUR).order_by("bucket")] == [
        720,
        720,
        720,
        120,
    ]


def test_it_prunes_each_resolution_past_its_retention(desk, settings):
    fill(desk, T0, 120)
    rollup(now=T0 + timedelta(hours=2))
    # When a day and an hour have passed since the first sample: raw samples go a whole UTC day at a time, and
    # the day of 2 March is not yet wholly past the 24 h, so they all stay
    result = prune(now=T0 + timedelta(hours=25))
    assert DesktopSample.objects.count() == 1440 and HostSample.objects.count() == 1440
    assert result.desktop_rollups == 0 and DesktopRollup.objects.count() == 122
    # When 4 March begins, 24 h reach back to 3 March: the whole of 2 March goes
    prune(now=datetime(2026, 3, 4, tzinfo=UTC))
    assert not DesktopSample.objects.exists() and not HostSample.objects.exists()
    assert DesktopRollup.objects.count() == 122
    # When eight days have passed: minutes go, hours stay
    result = prune(now=T0 + timedelta(days=8))
    assert result.desktop_rollups == 120 and result.host_rollups == 120
    assert set(DesktopRollup.objects.values_list("resolution", flat=True)) == {Resolution.HOUR}
    # When 91 days have passed: the hours go too
    prune(now=T0 + timedelta(days=91))
    assert not DesktopRollup.objects.exists() and not HostRollup.objects.exists()
    # And the retention is a setting: at 01:00 on 3 March, 24 h keep 2 March, 1 h does not
    fill(desk, T0, 2)
    prune(now=datetime(2026, 3, 3, 1, tzinfo=UTC))
    assert DesktopSample.objects.count() == 24
    settings.METRICS_RAW_RETENTION_H = 1
    prune(now=datetime(2026, 3, 3, 1, tzinfo=UTC))
    assert not DesktopSample.objects.exists() and not HostSample.objects.exists()
