"""A simulated month of metric samples for 2,000 desktops on PostgreSQL: dashboard and API query p95, retention.

Fills raw desktop and host samples for `--days` up to now, one row per desktop every `--interval-s` seconds (the
real collection takes one every 5 s: the default 300 s keeps a month to ~17 M rows, which this 2-core machine
fills in minutes), with generate_series in SQL, one statement per day and table, never through the ORM. Per-hour
rollups cover the whole month and per-minute ones the last `--minute-hours`, as the rollup beat leaves them; then
one pass of the rollup service itself (rollups.rollup) sums them into the tenants' per-bucket totals, as the beat
does on its first run after the upgrade (its time is printed as tenant_rollup_s).
Then, on that data:
- dashboard: the chart and latest-reading queries the pages run (desktop 1h raw / 24h minutes / 30d hours,
  tenant 24h / 30d, host 1h, the latest readings of every host), called in-process, each timed;
- API: `GET /api/v1/desktops/<id>/metrics/` (1h, 24h, 30d) and `GET /api/v1/metrics/tenant/` (24h, 30d) through
  Django's full stack with a tenant admin's bearer token;
- retention: dropping a whole day's partitions, and for comparison deleting the next day's rows with DELETE.
Prints the figures and, last,
`metrics_rows=<int> dashboard_p95_ms=<float> api_p95_ms=<float> retention_drop_ms=<float>`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench_metrics")

TENANTS = 10


def seed(desktops: int, hosts: int) -> tuple[list[str], dict[int, list[int]]]:
    """Tenants (with an admin's API token each), hosts and running desktops: (tokens, tenant id → desktop ids)."""
    from django.utils import timezone

    from desktops.choices import DesktopState
    from desktops.models import Desktop, DesktopTemplate
    from hosts.choices import HostState
    from hosts.models import Host, Image
    from tenants.choices import Role
    from tenants.models import Membership, Tenant, User
    from tenants.services.tokens import create_token

    host_rows = Host.objects.bulk_create(
        Host(name=f"bench-{n}", uri=f"test:///bench-{n}", cpus=64, memory_mib=262144, state=HostState.UP)
        for n in range(hosts)
    )
    image = Image.objects.create(name="bench", source_path="/dev/null", sha256="0" * 64)
    template = DesktopTemplate.objects.create(name="Bench Linux", image=image, vcpus=2, memory_mib=2048)
    tokens, by_tenant = [], {}
    per_tenant = -(-desktops // TENANTS)
    for t in range(TENANTS):
        tenant = Tenant.objects.create(name=f"bench-{t}", slug=f"bench-{t}")
        admin = User.objects.create_user(email=f"admin{t}@example.test", password=None)
        membership = Membership.objects.create(user=admin, tenant=tenant, role=Role.ADMIN)
        tokens.append(create_token(membership=membership, name="bench")[1])
        count = min(per_tenant, desktops - t * per_tenant)
        rows = Desktop.objects.bulk_create(
            Desktop(
                tenant=tenant,
                user=admin,
                template=template,
                name=f"d{t}-{n}",
                vcpus=2,
                memory_mib=2048,
                state=DesktopState.RUNNING,
                host=host_rows[(t * per_tenant + n) % hosts],
                running_since=timezone.now(),
            )
            for n in range(count)
        )
        by_tenant[tenant.pk] = [d.pk for d in rows]
    return tokens, by_tenant


DESKTOP_SAMPLES = """
INSERT INTO desktops_desktopsample (desktop_id, tenant_id, host_id, at, cpu_percent, disk_read_bps, disk_write_bps,
    net_rx_bps, net_tx_bps, memory_used_mib, memory_total_mib, vcpus, cpu_time_ns, disk_read_bytes, disk_write_bytes,
    net_rx_bytes, net_tx_bytes)
SELECT d.id, d.tenant_id, d.host_id, t, random() * 100, random() * 1e6, random() * 1e6, random() * 1e5, random() * 1e5,
    1024 + random() * 1024, 2048, 2, 0, 0, 0, 0, 0
FROM desktops_desktop d
CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 microsecond',
    make_interval(secs => %(step)s)) t
"""
HOST_SAMPLES = """
INSERT INTO desktops_hostsample (host_id, at, desktops, cpu_percent, cpu_cores, memory_used_mib, cpus, memory_mib,
    free_memory_mib, allocated_vcpus, vcpu_capacity, allocated_memory_mib, memory_capacity_mib)
SELECT h.id, t, 100, random() * 100, random() * 64, 100000, 64, 262144, 100000, 200, 256, 204800, 262144
FROM hosts_host h
CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 microsecond',
    make_interval(secs => %(step)s)) t
"""
DESKTOP_ROLLUPS = """
INSERT INTO desktops_desktoprollup (desktop_id, tenant_id, resolution, bucket, samples, vcpus, cpu_percent,
    cpu_percent_max, memory_used_mib, memory_used_mib_max, disk_read_bps, disk_write_bps, net_rx_bps, net_tx_bps)
SELECT d.id, d.tenant_id, %(resolution)s, t, 12, 2, random() * 100, 100, 1500, 2048, 1e5, 1e5, 1e4, 1e4
FROM desktops_desktop d
CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 microsecond',
    make_interval(secs => %(step)s)) t
"""
HOST_ROLLUPS = """
INSERT INTO desktops_hostrollup (host_id, resolution, bucket, samples, desktops, cpu_percent, cpu_percent_max,
    cpu_cores, memory_used_mib, disk_read_bps, disk_write_bps, net_rx_bps, net_tx_bps, allocated_vcpus, vcpu_capacity,
    allocated_memory_mib, memory_capacity_mib)
SELECT h.id, %(resolution)s, t, 12, 100, random() * 100, 100, 32, 100000, 1e7, 1e7, 1e6, 1e6, 200, 256, 204800, 262144
FROM hosts_host h
CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 microsecond',
    make_interval(secs => %(step)s)) t
"""


def fill(days: int, interval_s: float, minute_hours: int, now: datetime) -> tuple[int, float]:
    """Samples and rollups up to `now`, a day per statement: (raw sample rows, seconds)."""
    from django.db import connection, transaction

    from desktops.metrics import partitions, rollups

    started = time.perf_counter()
    first_day = (now - timedelta(days=days)).date()
    partitions.ensure(now=partitions.day_start(first_day), days_ahead=days + 2)
    start = now - timedelta(days=days)
    rows = 0
    with connection.cursor() as cursor:
        for n in range(days):
            # Day slices keep each statement's memory bounded and show progress.
            window = {"start": start + timedelta(days=n), "end": start + timedelta(days=n + 1), "step": interval_s}
            with transaction.atomic():
                cursor.execute(DESKTOP_SAMPLES, window)
                rows += cursor.rowcount
                cursor.execute(HOST_SAMPLES, window)
                rows += cursor.rowcount
                cursor.execute(DESKTOP_ROLLUPS, window | {"resolution": "hour", "step": 3600})
                cursor.execute(HOST_ROLLUPS, window | {"resolution": "hour", "step": 3600})
            print(f"filled day {n + 1}/{days}: {rows} raw rows, {time.perf_counter() - started:.0f} s", flush=True)
        window = {"start": now - timedelta(hours=minute_hours), "end": now, "step": 60, "resolution": "minute"}
        with transaction.atomic():
            cursor.execute(DESKTOP_ROLLUPS, window)
            cursor.execute(HOST_ROLLUPS, window)
        # The tenant chart reads TenantRollup rows: built by the rollup service, as the beat would, not by hand.
        rolled = time.perf_counter()
        result = rollups.rollup(now=now)
        print(
            f"tenant_rollup_s={time.perf_counter() - rolled:.1f} tenant_minutes={result.tenant_minutes}"
            f" tenant_hours={result.tenant_hours}",
            flush=True,
        )
        cursor.execute("ANALYZE")
    return rows, time.perf_counter() - started


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def dashboard(by_tenant: dict[int, list[int]], rounds: int, now: datetime) -> dict[str, list[float]]:
    """Each dashboard query `rounds` times, on random desktops, tenants and hosts: kind → milliseconds."""
    from desktops.metrics import queries
    from desktops.models import Desktop
    from hosts.models import Host
    from tenants.models import Tenant

    rng = random.Random(21)
    tenants = list(Tenant.objects.filter(pk__in=by_tenant))
    hosts = list(Host.objects.all())
    all_desktops = [pk for pks in by_tenant.values() for pk in pks]
    timings: dict[str, list[float]] = {}

    def add(kind: str, call) -> None:
        timings.setdefault(kind, []).append(timed(call))

    for _ in range(rounds):
        desktop = Desktop.objects.get(pk=rng.choice(all_desktops))
        for range_key in ("1h", "24h", "30d"):
            add(
                f"desktop {range_key}",
                lambda r=range_key, d=desktop: queries.desktop_series(desktop=d, range_key=r, now=now),
            )
        tenant = rng.choice(tenants)
        for range_key in ("24h", "30d"):
            add(
                f"tenant {range_key}",
                lambda r=range_key, t=tenant: queries.tenant_series(tenant=t, range_key=r, now=now),
            )
        host = rng.choice(hosts)
        add("host 1h", lambda h=host: queries.host_series(host=h, range_key="1h", now=now))
        add("latest", lambda: queries.latest_desktop_samples(queries.latest_host_samples(now=now)))
    return timings


def api(tokens: list[str], by_tenant: dict[int, list[int]], rounds: int) -> dict[str, list[float]]:
    """The metrics API through Django's whole stack (auth, scoping, serialising), in-process: kind → ms."""
    from django.test import Client

    rng = random.Random(42)
    client = Client()
    tenant_ids = list(by_tenant)
    timings: dict[str, list[float]] = {}

    def get(kind: str, path: str, token: str, range_key: str) -> None:
        started = time.perf_counter()
        response = client.get(path, {"range": range_key}, HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
        timings.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.content[:200]!r}")

    # The first request loads the URL configuration, DRF and the schema's serializers: not a query's cost.
    client.get("/api/v1/metrics/tenant/", HTTP_AUTHORIZATION=f"Bearer {tokens[0]}", HTTP_HOST="127.0.0.1")
    for _ in range(rounds):
        n = rng.randrange(len(tenant_ids))
        token, desktop_id = tokens[n], rng.choice(by_tenant[tenant_ids[n]])
        for range_key in ("1h", "24h", "30d"):
            get(f"api desktop {range_key}", f"/api/v1/desktops/{desktop_id}/metrics/", token, range_key)
        for range_key in ("24h", "30d"):
            get(f"api tenant {range_key}", "/api/v1/metrics/tenant/", token, range_key)
    return timings


def retention(now: datetime) -> tuple[float, float, int, int]:
    """(ms to drop a whole day's partitions, ms to DELETE the next day's rows, rows deleted, partitions dropped)."""
    from django.db import transaction

    from desktops.metrics import partitions
    from desktops.metrics.models import DesktopSample, HostSample

    oldest = min(p.day for p in partitions.partitions(DesktopSample._meta.db_table))
    # The oldest day is only the part of it after `now - days`: out of the way first, untimed.
    partitions.drop_before(partitions.day_start(oldest + timedelta(days=1)))
    started = time.perf_counter()
    dropped = partitions.drop_before(partitions.day_start(oldest + timedelta(days=2)))
    drop_ms = (time.perf_counter() - started) * 1000
    # What the unpartitioned tables had to do for the same amount: delete a day's rows.
    day = partitions.day_start(oldest + timedelta(days=2))
    started = time.perf_counter()
    with transaction.atomic():
        # No model points at samples: Django deletes them with one DELETE statement, without loading them.
        deleted = DesktopSample.objects.filter(at__gte=day, at__lt=day + timedelta(days=1)).delete()[0]
        deleted += HostSample.objects.filter(at__gte=day, at__lt=day + timedelta(days=1)).delete()[0]
    return drop_ms, (time.perf_counter() - started) * 1000, deleted, len(dropped)


def report(timings: dict[str, list[float]]) -> list[float]:
    everything = []
    for kind, values in timings.items():
        everything += values
        p50, p95 = benchdb.percentile(values, 0.50), benchdb.percentile(values, 0.95)
        print(f"{kind:<18} n={len(values):<4} p50_ms={p50:.1f} p95_ms={p95:.1f} max_ms={max(values):.1f}")
    return everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--desktops", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval-s", type=float, default=300.0, help="seconds between two samples of a desktop")
    parser.add_argument("--minute-hours", type=int, default=24, help="hours of per-minute rollups")
    parser.add_argument("--rounds", type=int, default=40, help="timed calls of each query kind")
    parser.add_argument("--keep", action="store_true", help="leave the database for a look afterwards")
    args = parser.parse_args()
    # Every tenant needs a desktop: the API rounds pick one of a random tenant's.
    if not (TENANTS <= args.desktops <= 100_000 and 1 <= args.hosts <= 1000 and 2 <= args.days <= 90):
        parser.error(f"--desktops {TENANTS}..100000, --hosts 1..1000, --days 2..90")
    if not (5 <= args.interval_s <= 3600 and 1 <= args.minute_hours <= 24 * 7 and 1 <= args.rounds <= 10_000):
        parser.error("--interval-s 5..3600, --minute-hours 1..168, --rounds 1..10000")
    benchdb.create_database()
    try:
        from django.db import connection

        now = datetime.now(UTC)
        tokens, by_tenant = seed(args.desktops, args.hosts)
        rows, fill_s = fill(args.days, args.interval_s, args.minute_hours, now)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size(relid) FROM pg_partition_tree('desktops_desktopsample')")
            size_mib = sum(r[0] for r in cursor.fetchall()) / 2**20
        print(
            f"desktops={args.desktops} hosts={args.hosts} days={args.days} interval_s={args.interval_s:g}"
            f" raw_rows={rows} fill_s={fill_s:.0f} desktop_samples_mib={size_mib:.0f}"
        )
        dashboard_all = report(dashboard(by_tenant, args.rounds, now))
        api_all = report(api(tokens, by_tenant, args.rounds))
        drop_ms, delete_ms, deleted, dropped = retention(now)
        print(
            f"retention: dropped a whole day's {dropped} partitions in {drop_ms:.1f} ms;"
            f" DELETE of the next day's {deleted} rows took {delete_ms:.0f} ms"
        )
    finally:
        if not args.keep:
            benchdb.drop_database()
    print(
        f"metrics_rows={rows} dashboard_p95_ms={benchdb.percentile(dashboard_all, 0.95):.1f}"
        f" api_p95_ms={benchdb.percentile(api_all, 0.95):.1f} retention_drop_ms={drop_ms:.1f}"
    )


if __name__ == "__main__":
    main()
