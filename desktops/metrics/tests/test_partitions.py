"""Raw samples partitioned by day on PostgreSQL: days made ahead, a day nobody made, retention, pruning in queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from desktops.metrics import partitions, queries, tasks
from desktops.metrics.models import DesktopSample, HostSample
from desktops.metrics.rollups import prune, rollup
from desktops.models import Desktop
from desktops.tests.factories import DesktopFactory
from tests.services import require

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DESKTOPS = "desktops_desktopsample"
HOSTS = "desktops_hostsample"


@pytest.fixture(autouse=True)
def postgresql():
    require(connection.vendor == "postgresql", "PostgreSQL")


@pytest.fixture
def desk(alice, host, template) -> Desktop:
    return DesktopFactory(world=alice, template=template, host=host)


def days(table: str) -> list[date]:
    return [p.day for p in partitions.partitions(table)]


def rows_in(relation: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM ONLY "{relation}"')
        return cursor.fetchone()[0]


def sample(desk: Desktop, at: datetime, **fields) -> DesktopSample:
    return DesktopSample.objects.create(
        desktop=desk, tenant_id=desk.tenant_id, host_id=desk.host_id, at=at, vcpus=2, **fields
    )


def fill(desk: Desktop, start: datetime, minutes: int) -> None:
    """A desktop and its host sampled every 5 s from `start`, committed as far as the test's transaction goes."""
    ats = [start + timedelta(seconds=5 * k) for k in range(12 * minutes)]
    DesktopSample.objects.bulk_create(
        DesktopSample(desktop=desk, tenant_id=desk.tenant_id, host_id=desk.host_id, at=at, cpu_percent=10.0)
        for at in ats
    )
    HostSample.objects.bulk_create(HostSample(host_id=desk.host_id, at=at, desktops=1) for at in ats)
    # The foreign keys are checked at commit; PostgreSQL will not drop a table with such checks pending, and in
    # production the prune runs in a transaction of its own.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def scanned(sql: str) -> set[str]:
    """The tables a statement's plan reads."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    found: set[str] = set()

    def walk(node: dict) -> None:
        if "Relation Name" in node:
            found.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def test_it_makes_today_and_the_next_days_partitions_once(host):
    # When the partitions are ensured on 2 March
    made = partitions.ensure(now=T0)
    # Then both sample tables have 2, 3 and 4 March
    want = {date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)}
    assert want <= set(days(DESKTOPS)) and want <= set(days(HOSTS))
    assert date(2026, 3, 5) not in days(DESKTOPS)
    assert f"{DESKTOPS}_p20260302" in made and f"{HOSTS}_p20260304" in made
    # And a second run makes nothing
    assert partitions.ensure(now=T0) == []
    # And a day's partition takes exactly that UTC day
    sample_row = HostSample.objects.create(host=host, at=datetime(2026, 3, 3, 23, 59, 59, tzinfo=UTC))
    assert rows_in(f"{HOSTS}_p20260303") == 1 and rows_in(f"{HOSTS}_p20260304") == 0
    assert HostSample.objects.get(pk=sample_row.pk).at.day == 3


def test_it_keeps_a_sample_for_a_day_with_no_partition_and_moves_it_in_later(desk):
    # Given no partition for 2 March
    assert date(2026, 3, 2) not in days(DESKTOPS)
    # When a sample of that day is written
    written = sample(desk, T0, cpu_percent=42.0)
    # Then the insert works: the default partition holds it
    assert rows_in(f"{DESKTOPS}_default") == 1
    # When the partitions are ensured (on a later day: the stray's own day is made too)
    made = partitions.ensure(now=T0 + timedelta(days=1))
    # Then the sample moved into its day, the same row under the same id
    assert f"{DESKTOPS}_p20260302" in made
    assert rows_in(f"{DESKTOPS}_default") == 0 and rows_in(f"{DESKTOPS}_p20260302") == 1
    assert DesktopSample.objects.get(pk=written.pk).cpu_percent == 42.0
    # And new ids keep coming from the one sequence
    assert sample(desk, T0 + timedelta(seconds=5)).pk > written.pk


def test_it_drops_the_days_past_retention_and_keeps_the_recent_ones(desk):
    # Given samples on 2 and 3 March in their own partitions
    partitions.ensure(now=T0)
    fill(desk, T0, 2)
    fill(desk, T0 + timedelta(days=1), 2)
    # When the prune runs at 01:00 on 4 March (24 h reach back into 3 March)
    result = prune(now=datetime(2026, 3, 4, 1, tzinfo=UTC))
    # Then 2 March's partitions are gone, whole, and 3 and 4 March's stay with their rows
    assert set(result.dropped_partitions) == {f"{DESKTOPS}_p20260302", f"{HOSTS}_p20260302"}
    assert date(2026, 3, 2) not in days(DESKTOPS) and date(2026, 3, 2) not in days(HOSTS)
    assert {date(2026, 3, 3), date(2026, 3, 4)} <= set(days(DESKTOPS))
    assert DesktopSample.objects.count() == 24 and HostSample.objects.count() == 24
    assert DesktopSample.objects.earliest("at").at == T0 + timedelta(days=1)
    # And nothing was deleted row by row
    assert (result.desktop_samples, result.host_samples) == (0, 0)
    # When it runs again: nothing more goes
    assert prune(now=datetime(2026, 3, 4, 1, tzinfo=UTC)).dropped_partitions == ()


def test_it_deletes_strays_past_retention_from_the_default_partition(desk):
    # Given a sample that the default partition caught for a day long past
    sample(desk, T0 - timedelta(days=40))
    partitions.ensure(now=T0)
    # Then it stays there (it is past the horizon a stray's day is made for)
    assert rows_in(f"{DESKTOPS}_default") == 1
    # When the prune runs: it is deleted
    assert prune(now=T0).desktop_samples == 1
    assert rows_in(f"{DESKTOPS}_default") == 0


def test_it_reads_only_the_days_a_chart_or_rollup_asks_for(desk):
    # Given a week of day partitions, samples on 2 March
    partitions.ensure(now=T0 - timedelta(days=3), days_ahead=6)
    fill(desk, T0 - timedelta(minutes=30), 30)
    rollup(now=T0)
    # When charts, the latest readings and a steady-state rollup run
    with CaptureQueriesContext(connection) as captured:
        queries.desktop_series(desktop=desk, range_key="1h", now=T0)
        queries.host_series(host=desk.host, range_key="15m", now=T0)
        queries.latest_desktop_samples(queries.latest_host_samples(now=T0))
        rollup(now=T0 + timedelta(seconds=30))
    sample_queries = [q["sql"] for q in captured.captured_queries if "desktops_desktopsample" in q["sql"]]
    sample_queries += [q["sql"] for q in captured.captured_queries if "desktops_hostsample" in q["sql"]]
    assert len(sample_queries) >= 6
    # Then each plan reads 2 March's partition only: not the other days, not the default
    for sql in sample_queries:
        tables = scanned(sql)
        assert tables, sql
        assert {t.rsplit("_", 1)[1] for t in tables} == {"p20260302"}, (sql, tables)


def test_it_makes_the_coming_days_on_the_prune_beat(db):
    # Given the partition of the day after tomorrow is missing
    today = timezone.now().astimezone(UTC).date()
    later = today + timedelta(days=partitions.DAYS_AHEAD)
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{partitions.partition_name(DESKTOPS, later)}"')
    assert later not in days(DESKTOPS)
    # When the prune beat runs
    tasks.prune.apply()
    # Then it is there again, and today's too
    assert {today, later} <= set(days(DESKTOPS))
