"""Tenant rollups: each tenant's totals per bucket, summed by the rollup beat from its desktops' rollups."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from desktops.metrics.choices import Resolution
from desktops.metrics.models import DesktopRollup, DesktopSample, TenantRollup
from desktops.metrics.queries import TENANT_FIELDS, tenant_series
from desktops.metrics.rollups import prune, rollup
from desktops.models import Desktop
from desktops.tests.factories import DesktopFactory

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STEP = timedelta(seconds=5)
NOW = T0 + timedelta(hours=2, seconds=30)


def fill(desk: Desktop, start: datetime, minutes: int, *, cpu: float, memory: float, net: bool = True) -> None:
    """Samples every 5 s: CPU around `cpu` %, memory around `memory`; no network figures unless `net`."""
    DesktopSample.objects.bulk_create(
        DesktopSample(
            desktop=desk, tenant_id=desk.tenant_id, host_id=desk.host_id, at=start + timedelta(minutes=m) + k * STEP,
            cpu_percent=cpu + k, memory_used_mib=memory + m, disk_read_bps=1000.0 * desk.vcpus + k,
            disk_write_bps=10.0 * m, net_rx_bps=5.5 * k if net else None, net_tx_bps=1.25 * m if net else None,
            vcpus=desk.vcpus,
        )
        for m in range(minutes)
        for k in range(12)
    )  # fmt: skip


@pytest.fixture
def desks(alice, bob, host, template) -> dict[str, list[Desktop]]:
    """Three Alice desktops (2, 4 and 1 vCPUs, the last without network figures) and one of Bob's, two hours each."""
    alices = [DesktopFactory(world=alice, template=template, host=host, vcpus=v) for v in (2, 4, 1)]
    bobs = [DesktopFactory(world=bob, template=template, host=host, vcpus=8)]
    fill(alices[0], T0, 120, cpu=20.0, memory=1000.0)
    fill(alices[1], T0 + timedelta(minutes=30), 90, cpu=50.0, memory=3000.0)
    fill(alices[2], T0, 45, cpu=5.0, memory=500.0, net=False)
    fill(bobs[0], T0, 120, cpu=90.0, memory=9000.0)
    return {"alice": alices, "bob": bobs}


def expected(tenant, resolution: str) -> list[dict]:
    """What the tenant chart added up at read time before: per bucket, over the tenant's desktop rollups."""
    sums: dict[datetime, dict] = defaultdict(lambda: {name: None for name in TENANT_FIELDS} | {"desktops": 0})

    def add(total: dict, name: str, value) -> None:
        if value is not None:
            total[name] = (total[name] or 0) + value

    for row in DesktopRollup.objects.filter(tenant=tenant, resolution=resolution):
        total = sums[row.bucket]
        total["desktops"] += 1
        add(total, "cpu_cores", None if row.cpu_percent is None else row.cpu_percent * row.vcpus / 100.0)
        for name in TENANT_FIELDS[2:]:
            add(total, name, getattr(row, name))
    return [{"bucket": bucket} | sums[bucket] for bucket in sorted(sums)]


def stored(tenant, resolution: str) -> list[dict]:
    rows = TenantRollup.objects.for_tenant(tenant).filter(resolution=resolution).order_by("bucket")
    return list(rows.values("bucket", *TENANT_FIELDS))


def columns(rows: list[dict]) -> dict[str, list]:
    return {name: [r[name] for r in rows] for name in TENANT_FIELDS}


def same(got: dict[str, list], want: dict[str, list], *, tolerance: float) -> bool:
    """Equal columns, numbers within `tolerance` (sums in another order differ in the last bits), nulls as nulls."""
    assert got.keys() == want.keys()
    for name in want:
        assert len(got[name]) == len(want[name]), name
        for a, b in zip(got[name], want[name], strict=True):
            assert (a is None) == (b is None), name
            assert a is None or a == pytest.approx(b, rel=1e-12, abs=tolerance), name
    return True


def matches_desktop_rollups(tenant, resolution: str) -> bool:
    """The stored tenant rows are the sums of the tenant's desktop rollups, bucket for bucket."""
    rows, want = stored(tenant, resolution), expected(tenant, resolution)
    assert [r["bucket"] for r in rows] == [r["bucket"] for r in want]
    return same(columns(rows), columns(want), tolerance=1e-9)


def test_the_tenant_series_is_what_adding_up_the_desktop_rollups_gave(alice, desks):
    # When the rollup beat runs over two hours of samples
    result = rollup(now=NOW)
    assert (result.tenant_minutes, result.tenant_hours) == (120 + 120, 2 + 2)  # Alice's and Bob's
    # Then the tenant chart reads one row per bucket, with the same numbers the read-time sums gave
    for range_key, resolution in (("24h", Resolution.MINUTE), ("7d", Resolution.HOUR)):
        want = expected(alice.tenant, resolution)
        series = tenant_series(tenant=alice.tenant, range_key=range_key, now=NOW).as_dict()
        assert series["resolution"] == resolution
        assert series["t"] == [bucket.timestamp() for bucket in (r["bucket"] for r in want)]
        # (The chart rounds to two decimals.)
        assert same({name: series[name] for name in TENANT_FIELDS}, columns(want), tolerance=0.0051)
        assert matches_desktop_rollups(alice.tenant, resolution)
    # And the sums are of every desktop that reported: two at first, three while all ran, two after one stopped
    minutes = tenant_series(tenant=alice.tenant, range_key="24h", now=NOW).as_dict()
    assert (minutes["desktops"][0], minutes["desktops"][40], minutes["desktops"][100]) == (2, 3, 2)
    # And a desktop without network figures adds nothing to them, rather than making the sum null
    first = DesktopRollup.objects.get(desktop=desks["alice"][0], resolution=Resolution.MINUTE, bucket=T0)
    assert minutes["net_rx_bps"][0] == round(first.net_rx_bps, 2) and minutes["desktops"][0] == 2


def test_rerunning_a_pass_gives_the_same_rows(alice, bob, desks):
    rollup(now=NOW)
    keys = [(t, r) for t in (alice.tenant, bob.tenant) for r in (Resolution.MINUTE, Resolution.HOUR)]
    before = {key: stored(*key) for key in keys}
    ids = set(TenantRollup.objects.values_list("pk", flat=True))
    # When the beat runs again over the same buckets (its overlap), and once more later the same minute
    rollup(now=NOW)
    rollup(now=NOW + timedelta(seconds=20))
    # Then nothing is doubled or changed: the same rows, updated in place
    for key in keys:
        after = stored(*key)
        assert [r["bucket"] for r in after] == [r["bucket"] for r in before[key]]
        # The desktop rollups were rewritten too, so PostgreSQL may add a bucket's floats in another order: equal
        # to the last bits, not necessarily in them.
        assert same(columns(after), columns(before[key]), tolerance=1e-9)
        assert [r["desktops"] for r in after] == [r["desktops"] for r in before[key]]
    assert set(TenantRollup.objects.values_list("pk", flat=True)) == ids
    assert TenantRollup.objects.count() == 2 * (120 + 2)


def test_a_late_sample_that_changes_a_desktop_rollup_updates_the_tenant_rollup(alice, desks):
    rollup(now=NOW)
    last = T0 + timedelta(minutes=119)
    total = TenantRollup.objects.get(tenant=alice.tenant, resolution=Resolution.MINUTE, bucket=last)
    # When a collection that committed late adds a reading of Alice's first desktop to the last minute
    first = desks["alice"][0]
    DesktopSample.objects.create(
        desktop=first, tenant_id=first.tenant_id, host_id=first.host_id, at=last + timedelta(seconds=58),
        cpu_percent=100.0, memory_used_mib=99999.0, vcpus=first.vcpus,
    )  # fmt: skip
    rollup(now=NOW)
    # Then the next pass carries the changed desktop minute and hour into the tenant's totals
    changed = TenantRollup.objects.get(pk=total.pk)
    assert changed.memory_used_mib > total.memory_used_mib and changed.cpu_cores > total.cpu_cores
    assert matches_desktop_rollups(alice.tenant, Resolution.MINUTE)
    assert matches_desktop_rollups(alice.tenant, Resolution.HOUR)


def test_tenants_never_mix(alice, bob, desks):
    rollup(now=NOW)
    # Bob's 8-vCPU desktop at ~95 % is in Bob's totals only
    bobs = tenant_series(tenant=bob.tenant, range_key="24h", now=NOW).as_dict()
    assert set(bobs["desktops"]) == {1} and len(bobs["t"]) == 120
    assert bobs == tenant_series(tenant=bob.tenant, range_key="24h", now=NOW).as_dict()
    want = columns(expected(bob.tenant, Resolution.MINUTE))
    assert same({name: bobs[name] for name in TENANT_FIELDS}, want, tolerance=0.0051)
    assert matches_desktop_rollups(bob.tenant, Resolution.MINUTE)
    alices = tenant_series(tenant=alice.tenant, range_key="24h", now=NOW).as_dict()
    assert max(alices["memory_used_mib"]) < 9000.0 and max(alices["desktops"]) == 3
    # And no tenant means no rows, never every tenant's
    assert tenant_series(tenant=None, range_key="24h", now=NOW).as_dict()["t"] == []
    assert set(TenantRollup.objects.values_list("tenant_id", flat=True)) == {alice.tenant.pk, bob.tenant.pk}


def test_the_first_pass_after_the_upgrade_sums_the_desktop_rollups_already_there(alice, desks):
    rollup(now=NOW)
    # Given desktop rollups from before tenant rollups existed (none of these is in the beat's overlap any more)
    TenantRollup.objects.all().delete()
    # When the beat runs hours later, with no new samples
    rollup(now=NOW + timedelta(hours=5))
    # Then the tenant chart still shows the whole history
    assert matches_desktop_rollups(alice.tenant, Resolution.MINUTE)
    assert matches_desktop_rollups(alice.tenant, Resolution.HOUR)
    assert TenantRollup.objects.count() == 2 * (120 + 2)


def test_retention_drops_tenant_rollups_with_the_desktop_rollups_of_their_resolution(alice, desks, settings):
    rollup(now=NOW)
    assert prune(now=T0 + timedelta(days=1)).tenant_rollups == 0
    # When eight days have passed: minutes go, hours stay
    result = prune(now=T0 + timedelta(days=8))
    assert result.tenant_rollups == 2 * 120
    assert set(TenantRollup.objects.values_list("resolution", flat=True)) == {Resolution.HOUR}
    assert not DesktopRollup.objects.filter(resolution=Resolution.MINUTE).exists()
    # When the hour retention (a setting) is past too, the hours go
    settings.METRICS_HOUR_RETENTION_D = 30
    result = prune(now=T0 + timedelta(days=31))
    assert result.tenant_rollups == 2 * 2 and not TenantRollup.objects.exists()
    assert not DesktopRollup.objects.exists()
