"""Partitioning the raw sample tables by day keeps every row, its id and the id sequence, both ways."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.apps.registry import Apps
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from desktops.metrics import partitions
from desktops.metrics.models import DesktopSample, HostSample
from tests.services import require

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("metrics", "0002_host_node_figures")]
ATS = [
    datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC),
    datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC),
    datetime(2026, 3, 2, 12, 30, tzinfo=UTC),
]


def _migrate(targets: list[tuple[str, str]] | None = None) -> Apps:
    executor = MigrationExecutor(connection)
    state = executor.migrate(targets or executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()
    return state.apps


def _kind(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [table])
        return cursor.fetchone()[0]


def _seed(old: Apps) -> tuple[dict[int, datetime], dict[int, datetime]]:
    tenant = old.get_model("tenants", "Tenant").objects.create(name="Parts", slug="parts")
    user = old.get_model("tenants", "User").objects.create(email="parts@example.test", password="!")
    host = old.get_model("hosts", "Host").objects.create(name="h1", uri="test:///default", cpus=4, memory_mib=4096)
    image = old.get_model("hosts", "Image").objects.create(
        name="img", format="raw", source_path="/dev/null", size_bytes=1, sha256="0" * 64
    )
    template = old.get_model("desktops", "DesktopTemplate").objects.create(
        name="T", os_family="linux", image=image, vcpus=1, memory_mib=256, disk_gib=1
    )
    desktop = old.get_model("desktops", "Desktop").objects.create(
        tenant=tenant, user=user, template=template, name="d", vcpus=1, memory_mib=256, host=host
    )
    desktop_samples, host_samples = {}, {}
    for n, at in enumerate(ATS):
        row = old.get_model("metrics", "DesktopSample").objects.create(
            desktop=desktop, tenant=tenant, host=host, at=at, cpu_percent=float(n)
        )
        desktop_samples[row.pk] = at
        host_row = old.get_model("metrics", "HostSample").objects.create(host=host, at=at, desktops=n)
        host_samples[host_row.pk] = at
    return desktop_samples, host_samples


def test_it_moves_every_sample_into_its_day_and_back():
    require(connection.vendor == "postgresql", "PostgreSQL")
    try:
        # Given plain sample tables holding samples either side of midnight on 1-2 March
        desktop_samples, host_samples = _seed(_migrate(BEFORE))
        assert _kind("desktops_desktopsample") == "r"
        # When the partitioning migration runs
        _migrate()
        # Then the tables are partitioned and every row kept its id and time
        assert _kind("desktops_desktopsample") == "p" and _kind("desktops_hostsample") == "p"
        assert dict(DesktopSample.objects.values_list("pk", "at")) == desktop_samples
        assert dict(HostSample.objects.values_list("pk", "at")) == host_samples
        assert sorted(DesktopSample.objects.values_list("cpu_percent", flat=True)) == [0.0, 1.0, 2.0]
        # And each row sits in its own UTC day's partition, none in the default
        with connection.cursor() as cursor:
            counts = {}
            for name in ("p20260301", "p20260302", "default"):
                cursor.execute(f'SELECT count(*) FROM "desktops_desktopsample_{name}"')
                counts[name] = cursor.fetchone()[0]
        assert counts == {"p20260301": 1, "p20260302": 2, "default": 0}
        # And today's and the next days' partitions are there for the collections to come
        today = datetime.now(UTC).date()
        assert today in {p.day for p in partitions.partitions("desktops_hostsample")}
        # And the ids go on from the sequence past the old ones
        first = DesktopSample.objects.get(pk=min(desktop_samples))
        new = DesktopSample.objects.create(
            desktop_id=first.desktop_id, tenant_id=first.tenant_id, host_id=first.host_id, at=datetime.now(UTC)
        )
        assert new.pk > max(desktop_samples)
        # When it is reversed
        _migrate(BEFORE)
        # Then the tables are plain again with every row, the new one too
        assert _kind("desktops_desktopsample") == "r" and _kind("desktops_hostsample") == "r"
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM desktops_desktopsample ORDER BY id")
            assert [row[0] for row in cursor.fetchall()] == [*sorted(desktop_samples), new.pk]
            cursor.execute(
                "SELECT count(*) FROM pg_class WHERE relname ~ '^desktops_desktopsample_(p[0-9]{8}|default)$'"
            )
            assert cursor.fetchone()[0] == 0
    finally:
        _migrate()


def test_the_translatable_names_migration_changes_names_only_and_no_table():
    require(connection.vendor == "postgresql", "PostgreSQL")
    # Given the migration that gave the sample and rollup fields their translatable names
    executor = MigrationExecutor(connection)
    migration = executor.loader.get_migration("metrics", "0004_translatable_names")
    assert {type(op).__name__ for op in migration.operations} == {"AlterField", "AlterModelOptions"}
    # Then PostgreSQL is sent nothing for it: the partitioned tables keep their keys, indexes and foreign keys
    statements = [s for s in executor.loader.collect_sql([(migration, False)]) if not s.startswith("--")]
    assert statements == []
    # And backwards neither
    assert [s for s in executor.loader.collect_sql([(migration, True)]) if not s.startswith("--")] == []
