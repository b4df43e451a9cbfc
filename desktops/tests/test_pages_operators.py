"""The operators' admin: the live host dashboard, the front page figures, tenants and desktops."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from desktops.choices import OperationKind
from desktops.models import Operation
from desktops.tests.conftest import make_test_host
from desktops.tests.factories import OperationFactory
from desktops.tests.page_world import populate
from hosts.models import Allocation
from hosts.services.overview import fleet
from tenants.models import AuditEvent, Tenant, User
from tests.fixtures import login_client


@pytest.fixture
def operator(db):
    user = User.objects.create_superuser(email=f"op-{uuid.uuid4().hex[:6]}@example.test", password="x" * 12)
    return login_client(user)


def test_it_sums_up_each_hosts_health_capacity_and_desktops(db, tmp_path):
    # Given a healthy host holding two desktops, one in maintenance, and one silent for ten minutes
    busy = make_test_host(tmp_path, name="kvm-a", allocated_vcpus=48, allocated_memory_mib=8192)
    for desktop_id in (101, 102):
        Allocation.objects.create(desktop_id=desktop_id, host=busy, vcpus=2, memory_mib=2048)
    make_test_host(tmp_path, name="kvm-b", maintenance=True)
    make_test_host(tmp_path, name="kvm-c", last_heartbeat_at=timezone.now() - timedelta(minutes=10))
    # When the fleet is summed up
    figures = fleet()
    rows = {row.host.name: row for row in figures.rows}
    # Then each host has its status, desktops and allocation, and the totals count hosts that are up
    assert {name: row.status for name, row in rows.items()} == {"kvm-a": "up", "kvm-b": "maintenance", "kvm-c": "stale"}
    assert (rows["kvm-a"].desktops, rows["kvm-a"].vcpu_percent) == (2, 75)
    assert (figures.up, figures.unavailable, figures.desktops, figures.vcpus) == (1, 2, 2, (48, 64))


def test_it_shows_the_live_host_dashboard_to_operators(operator, tmp_path):
    make_test_host(tmp_path, name="kvm-a", allocated_vcpus=16)
    page = operator.get("/admin/hosts/host/dashboard/").content.decode()
    assert 'data-host="kvm-a"' in page and 'data-vcpu-percent="25"' in page and "16 / 64" in page
    assert 'hx-get="/admin/hosts/host/dashboard/rows/"' in page
    rows = operator.get("/admin/hosts/host/dashboard/rows/").content.decode()
    assert rows.lstrip().startswith('<div id="fleet"') and "<html" not in rows
    assert 'href="/admin/hosts/host/dashboard/"' in operator.get("/admin/hosts/host/").content.decode()


def test_it_puts_the_fleet_and_desktop_figures_on_the_admin_front_page(operator, alice, image, tmp_path):
    make_test_host(tmp_path, name="kvm-a")
    populate(alice, image)
    OperationFactory(
        desktop=alice.member.desktops.first(),
        kind=OperationKind.START,
        status="failed",
        finished_at=timezone.now(),
    )
    page = operator.get("/admin/").content.decode()
    assert 'data-testid="ops-overview"' in page
    assert "<span>Desktops running</span><strong>3</strong>" in page
    assert "<span>Failed operations</span><strong>1</strong>" in page


def test_it_audits_quota_changes_made_by_operators(operator, alice):
    tenant = alice.tenant
    form = {
        "name": tenant.name,
        "slug": tenant.slug,
        "quota_desktops": 5,
        "quota_vcpus": 0,
        "quota_ram_mib": 0,
        "max_running_per_user": 2,
        "idle_timeout_minutes": 60,
        "idle_action": "stop",
        "inactivity_logout_minutes": 0,
        "max_session_hours": 0,
        "recording_retention_days": 30,
        "max_consoles_per_person": 3,
        "max_consoles_per_tenant": 0,
        # Checked boxes, as the browser posts them (these default to on).
        "clipboard_to_desktop": "on",
        "clipboard_from_desktop": "on",
        "audio_enabled": "on",
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
    }
    response = operator.post(f"/admin/tenants/tenant/{tenant.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Tenant.objects.get(pk=tenant.pk).quota_desktops == 5
    assert AuditEvent.objects.get(action="tenant.policies").data["after"] == {"quota_desktops": 5}


def test_it_suspends_tenants_only_through_the_audited_action(operator, alice):
    page = operator.get(f"/admin/tenants/tenant/{alice.tenant.pk}/change/").content.decode()
    assert 'name="status"' not in page
    operator.post("/admin/tenants/tenant/", {"action": "suspend", "_selected_action": [alice.tenant.pk]}, follow=True)
    assert Tenant.objects.get(pk=alice.tenant.pk).status == "suspended"
    assert AuditEvent.objects.filter(action="tenant.suspended").exists()


def test_it_snapshots_desktops_from_the_admin_list(operator, alice, image):
    world = populate(alice, image)
    operator.post(
        "/admin/desktops/desktop/",
        {"action": "bulk_snapshot", "_selected_action": [world["mine"].pk, world["stopped"].pk]},
        follow=True,
    )
    assert Operation.objects.in_flight().filter(kind=OperationKind.SNAPSHOT).count() == 2
