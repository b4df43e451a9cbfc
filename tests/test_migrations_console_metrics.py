"""The move of the console and metrics models into their own apps upgrades a database in place."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.apps.registry import Apps
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from desktops.console.models import ConsoleSession, ConsoleTicket, Recording
from desktops.metrics.models import DesktopRollup, DesktopSample, HostRollup, HostSample

pytestmark = pytest.mark.django_db(transaction=True)

# Where main stood before the move: the models were desktops' and the two apps had no migrations yet.
BEFORE_THE_MOVE = [("desktops", "0003_metrics"), ("console", None), ("metrics", None)]
AT = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)


def _migrate(targets: list[tuple[str, str | None]] | None = None) -> Apps:
    """Migrate the test database to `targets` (default: every app's latest); the models of that state."""
    executor = MigrationExecutor(connection)
    targets = targets or executor.loader.graph.leaf_nodes()
    state = executor.migrate(targets)
    ContentType.objects.clear_cache()
    return state.apps


def _seed_before_the_move(old: Apps) -> dict[str, int]:
    """One row in each moved table, written through the models as they were (all in the desktops app)."""

    def model(name: str):
        return old.get_model("desktops", name)

    tenant = old.get_model("tenants", "Tenant").objects.create(name="Upgrade", slug="upgrade")
    user = old.get_model("tenants", "User").objects.create(email="upgrade@example.test", password="!")
    host = old.get_model("hosts", "Host").objects.create(name="h1", uri="test:///default", cpus=4, memory_mib=4096)
    image = old.get_model("hosts", "Image").objects.create(
        name="img", format="raw", source_path="/dev/null", size_bytes=1, sha256="0" * 64
    )
    template = model("DesktopTemplate").objects.create(
        name="T", os_family="linux", image=image, vcpus=1, memory_mib=256, disk_gib=1, price_per_hour=Decimal("0.10")
    )
    desktop = model("Desktop").objects.create(
        tenant=tenant, user=user, template=template, name="d", vcpus=1, memory_mib=256, host=host
    )
    session = model("ConsoleSession").objects.create(
        tenant=tenant, desktop=desktop, user=user, bytes_to_desktop=42, end_reason="browser_closed:1000"
    )
    model("Recording").objects.create(tenant=tenant, desktop=desktop, user=user, session=session, path="r.qzrec")
    model("ConsoleTicket").objects.create(
        tenant=tenant, desktop=desktop, user=user, token_hash="a" * 64, session_key_hash="b" * 64, expires_at=AT
    )
    model("DesktopSample").objects.create(desktop=desktop, tenant=tenant, host=host, at=AT, cpu_percent=12.5)
    model("DesktopRollup").objects.create(desktop=desktop, tenant=tenant, resolution="minute", bucket=AT, samples=3)
    model("HostSample").objects.create(host=host, at=AT, desktops=1, cpus=4)
    model("HostRollup").objects.create(host=host, resolution="hour", bucket=AT, samples=60)
    content_type = old.get_model("contenttypes", "ContentType").objects.get(app_label="desktops", model="recording")
    return {"desktop": desktop.pk, "host": host.pk, "session": session.pk, "recording_type": content_type.pk}


def test_it_keeps_every_row_when_the_models_move_to_their_apps():
    try:
        # Given a database at the state before the move, with a row in each table the move concerns
        seeded = _seed_before_the_move(_migrate(BEFORE_THE_MOVE))
        # When it is migrated to the latest state
        _migrate()
        # Then the new apps' models read the same rows from the same tables
        session = ConsoleSession.objects.get()
        assert (session.pk, session.desktop_id, session.bytes_to_desktop) == (seeded["session"], seeded["desktop"], 42)
        assert session.end_reason == "browser_closed:1000"
        assert Recording.objects.get().session == session
        assert ConsoleTicket.objects.get().expires_at == AT
        sample = DesktopSample.objects.get()
        assert (sample.desktop_id, sample.host_id, sample.at, sample.cpu_percent) == (
            seeded["desktop"],
            seeded["host"],
            AT,
            12.5,
        )
        assert DesktopRollup.objects.get().samples == 3
        assert (HostSample.objects.get().cpus, HostRollup.objects.get().samples) == (4, 60)
        # And the content types moved with them (permissions and admin history keep pointing at them)
        assert ContentType.objects.get_for_model(Recording).pk == seeded["recording_type"]
        assert not ContentType.objects.filter(app_label="desktops", model__in=["recording", "hostsample"]).exists()
    finally:
        _migrate()
