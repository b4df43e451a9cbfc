"""Chart API: the range picks the resolution; desktops, tenant totals and hosts each for the right people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from desktops.metrics.choices import Resolution
from desktops.metrics.models import DesktopRollup, DesktopSample, HostRollup, HostSample
from desktops.metrics.rollups import rollup
from desktops.models import Desktop
from desktops.tests.factories import DesktopFactory
from tenants.choices import Role
from tenants.models import Membership
from tenants.models.token import TokenScope
from tenants.services.tokens import create_token
from tests.factories import UserFactory
from tests.fixtures import api_client


def minute_rows(desk: Desktop, *, buckets, cpu: float, memory: float, resolution=Resolution.MINUTE) -> None:
    DesktopRollup.objects.bulk_create(
        DesktopRollup(
            desktop=desk, tenant_id=desk.tenant_id, resolution=resolution, bucket=b, samples=12, vcpus=desk.vcpus,
            cpu_percent=cpu, cpu_percent_max=cpu, memory_used_mib=memory, memory_used_mib_max=memory,
        )
        for b in buckets
    )  # fmt: skip


@pytest.fixture
def now():
    return timezone.now().replace(second=0, microsecond=0)


def test_it_answers_raw_samples_for_short_ranges(alice, host, template):
    desk = DesktopFactory(world=alice, template=template, host=host)
    now = timezone.now()
    # Given raw samples every 5 s for the last 20 minutes
    DesktopSample.objects.bulk_create(
        DesktopSample(desktop=desk, tenant=alice.tenant, host=host, at=now - timedelta(seconds=5 * i),
                      cpu_percent=float(i % 7), memory_used_mib=512.0)
        for i in range(240)
    )  # fmt: skip
    client = api_client(alice.member, alice.tenant)
    # When the owner asks for the last 15 minutes
    body = client.get(f"/api/v1/desktops/{desk.pk}/metrics/", {"range": "15m"}).json()
    # Then they get raw points, oldest first, in columns a chart library takes as they are
    assert (body["id"], body["range"], body["resolution"], body["step_s"]) == (desk.pk, "15m", "raw", 5)
    # (every sample inside the 15 minutes the answer says it covers: counted from its own window, since a slow run
    # lets the window slide past the oldest sample or two between the writing and the asking)
    start, end = (datetime.fromtimestamp(body[k], tz=UTC) for k in ("start", "end"))
    inside = [i for i in range(240) if start <= now - timedelta(seconds=5 * i) <= end]
    assert end - start == timedelta(minutes=15) and len(inside) >= 178
    assert len(body["t"]) == len(inside) and body["t"] == sorted(body["t"])
    assert len(body["cpu_percent"]) == len(body["t"]) and set(body["memory_used_mib"]) == {512.0}
    assert set(body) >= {"disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps", "start", "end"}
    # And the default range is the last hour
    assert client.get(f"/api/v1/desktops/{desk.pk}/metrics/").json()["range"] == "1h"


def test_it_answers_rollups_for_longer_ranges(alice, host, template, now):
    desk = DesktopFactory(world=alice, template=template, host=host)
    minute_rows(desk, buckets=[now - timedelta(minutes=m) for m in range(30)], cpu=40.0, memory=1024.0)
    minute_rows(desk, buckets=[now - timedelta(hours=h) for h in range(48)], cpu=10.0, memory=900.0,
                resolution=Resolution.HOUR)  # fmt: skip
    client = api_client(alice.member, alice.tenant)
    day = client.get(f"/api/v1/desktops/{desk.pk}/metrics/", {"range": "24h"}).json()
    assert (day["resolution"], day["step_s"], len(day["t"]), set(day["cpu_percent"])) == ("minute", 60, 30, {40.0})
    week = client.get(f"/api/v1/desktops/{desk.pk}/metrics/", {"range": "7d"}).json()
    assert (week["resolution"], week["step_s"], len(week["t"]), set(week["cpu_percent"])) == ("hour", 3600, 48, {10.0})


def test_it_refuses_an_unknown_range_with_a_stable_code(alice, host, template):
    desk = DesktopFactory(world=alice, template=template, host=host)
    response = api_client(alice.member, alice.tenant).get(f"/api/v1/desktops/{desk.pk}/metrics/", {"range": "2y"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_range"


def test_it_shows_a_members_desktop_to_them_and_their_admins_only(alice, host, template):
    desk = DesktopFactory(world=alice, template=template, host=host)
    colleague = UserFactory()
    alice.tenant.memberships.create(user=colleague, role="member")
    url = f"/api/v1/desktops/{desk.pk}/metrics/"
    assert api_client(colleague, alice.tenant).get(url).status_code == 404
    assert api_client(alice.admin, alice.tenant).get(url).status_code == 200


def test_it_totals_the_tenant_for_its_admins(alice, bob, host, template, now):
    # Given two Alice desktops (2 and 4 vCPUs) at 50 % and 25 %, and a Bob desktop that must not count
    first = DesktopFactory(world=alice, template=template, host=host, vcpus=2)
    second = DesktopFactory(world=alice, template=template, host=host, vcpus=4)
    minute_rows(first, buckets=[now, now - timedelta(minutes=1)], cpu=50.0, memory=1000.0)
    minute_rows(second, buckets=[now], cpu=25.0, memory=3000.0)
    minute_rows(DesktopFactory(world=bob, template=template, host=host), buckets=[now], cpu=100.0, memory=9999.0)
    # And the rollup beat has summed them into each tenant's totals
    rollup()
    # When Alice's admin asks for the tenant's totals
    response = api_client(alice.admin, alice.tenant).get("/api/v1/metrics/tenant/", {"range": "15m"})
    body = response.json()
    # Then each minute adds up Alice's desktops only: vCPUs' worth of CPU in use, and memory
    assert body["resolution"] == "minute" and len(body["t"]) == 2
    assert body["desktops"] == [1, 2]
    assert body["cpu_cores"] == [1.0, 2.0]  # 50 % of 2; then 50 % of 2 + 25 % of 4
    assert body["memory_used_mib"] == [1000.0, 4000.0]
    # And members may not see tenant-wide figures
    member = api_client(alice.member, alice.tenant).get("/api/v1/metrics/tenant/")
    assert member.status_code == 403 and member.json()["code"] == "admin_required"


def test_it_shows_hosts_to_operators_only(alice, host, now):
    HostSample.objects.create(host=host, at=now, desktops=3, cpu_percent=12.5, allocated_vcpus=6, vcpu_capacity=64)
    HostRollup.objects.create(host=host, resolution=Resolution.HOUR, bucket=now, samples=720, cpu_percent=7.0)
    staff = UserFactory(is_staff=True)
    body = api_client(staff).get(f"/api/v1/metrics/hosts/{host.pk}/").json()
    assert (body["id"], body["resolution"], body["desktops"], body["allocated_vcpus"], body["vcpu_capacity"]) == (
        host.pk,
        "raw",
        [3],
        [6],
        [64],
    )
    assert api_client(staff).get(f"/api/v1/metrics/hosts/{host.pk}/", {"range": "30d"}).json()["cpu_percent"] == [7.0]
    # A tenant's owner is no operator: the host does not exist for them
    response = api_client(alice.owner, alice.tenant).get(f"/api/v1/metrics/hosts/{host.pk}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_it_keeps_an_operators_automation_token_off_the_host_figures(alice, host):
    # An operator's token limited to automation drives desktops, not the operator's pages
    staff = UserFactory(is_staff=True)
    membership = Membership.objects.create(user=staff, tenant=alice.tenant, role=Role.MEMBER)
    _token, raw = create_token(membership=membership, name="bot", scope=TokenScope.AUTOMATION_READ)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.get(f"/api/v1/metrics/hosts/{host.pk}/")
    assert response.status_code == 403 and response.json()["code"] == "token_scope"
    # While the same operator's full token reads them
    _token, full = create_token(membership=membership, name="ops")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {full}")
    assert client.get(f"/api/v1/metrics/hosts/{host.pk}/").json()["id"] == host.pk
