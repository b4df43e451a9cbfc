"""The tenant admin (manage) pages: dashboard, desktops, pools (through the pools service)."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import URLResolver, get_resolver

from desktops.models import Pool
from desktops.tests.factories import DesktopFactory
from desktops.tests.page_world import populate
from tenants.models import AuditEvent
from tests.fixtures import login_client


@pytest.fixture
def world(alice, image):
    return populate(alice, image)


@pytest.fixture
def admin(alice):
    return login_client(alice.admin, alice.tenant)


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_it_shows_the_dashboard_with_its_figures_and_the_hours_chart(admin, world):
    page = html(admin.get("/manage/"))
    assert re.search(r'data-testid="running">3<', page)
    assert re.search(r'data-testid="active-people">2 <small>of 3</small>', page)
    assert "idle, stopping in" in page
    chart = json.loads(re.search(r'<script id="hours-chart-data" type="application/json">(.*?)</script>', page)[1])
    assert len(chart["x"]) == len(chart["y"]) == 30 and round(sum(chart["y"]), 1) == 21.0
    # The figures refresh by themselves from their own URL
    assert 'hx-get="/manage/figures/"' in page
    figures = html(admin.get("/manage/figures/"))
    assert figures.startswith('\n<div id="figures"') or figures.lstrip().startswith('<div id="figures"')
    assert "<html" not in figures


def test_it_lists_every_desktop_of_the_tenant_with_filters(admin, alice, world):
    page = html(admin.get("/manage/desktops/"))
    assert page.count("data-desktop-row=") == 4
    idle = html(admin.get("/manage/desktops/?state=idle"))
    # idle: running with no console open (the member's and the warm pool's)
    assert idle.count("data-desktop-row=") == 2
    mine = html(admin.get(f"/manage/desktops/?person={alice.member.pk}"))
    assert mine.count("data-desktop-row=") == 2
    stopped = html(admin.get("/manage/desktops/?state=stopped&template=nonsense"))
    assert stopped.count("data-desktop-row=") == 1


def test_it_shows_pools_with_their_warm_count(admin, alice, world):
    # Given one warm desktop in the pool, and one the pool handed out (not warm any more)
    DesktopFactory(
        world=alice, template=world["ubuntu"], lived_in=True, user=alice.owner, kind="pooled", pool=world["pool"]
    )
    page = html(admin.get("/manage/pools/"))
    assert f'data-testid="warm-{world["pool"].pk}">1<' in page and "of 2" in page


def test_it_creates_a_pool_through_the_service(admin, world):
    response = admin.post(
        "/manage/pools/",
        {
            "template": world["windows"].pk,
            "name": "",
            "min_ready": 1,
            "max_size": 3,
            "warm_state": "hibernated",
            "idle_action": "recycle",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    pool = Pool.objects.get(template=world["windows"])
    assert (pool.name, pool.min_ready, pool.max_size, pool.warm_state) == ("Windows 11 Pro", 1, 3, "hibernated")
    assert AuditEvent.objects.filter(action="pool.save", target_id=str(pool.pk)).exists()


def test_it_explains_a_pool_that_cannot_be_saved(admin, world):
    base = {"name": "", "warm_state": "running", "idle_action": "recycle", "enabled": "on"}
    too_small = admin.post("/manage/pools/", {**base, "template": world["windows"].pk, "min_ready": 5, "max_size": 2})
    assert too_small.status_code == 400 and b"Must not be more than the maximum size." in too_small.content
    # A second pool for a template that has one is refused on the form, not with a 500
    again = admin.post("/manage/pools/", {**base, "template": world["ubuntu"].pk, "min_ready": 1, "max_size": 2})
    assert again.status_code == 400 and b"already exists" in again.content
    assert Pool.objects.count() == 1


def test_it_changes_and_removes_a_pool(admin, world):
    pool = world["pool"]
    edit = f"/manage/pools/{pool.pk}/"
    assert html(admin.get(edit))
    response = admin.post(
        edit,
        {
            "template": world["windows"].pk,
            "name": "Ubuntu pool",
            "min_ready": 4,
            "max_size": 8,
            "warm_state": "running",
            "idle_action": "recycle",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    pool.refresh_from_db()
    # The sizes changed; the template did not (a pool belongs to one template)
    assert (pool.min_ready, pool.max_size, pool.template_id) == (4, 8, world["ubuntu"].pk)
    assert admin.post(f"/manage/pools/{pool.pk}/delete/").status_code == 302
    assert not Pool.objects.filter(pk=pool.pk).exists()
    assert AuditEvent.objects.filter(action="pool.delete").exists()


def manage_routes() -> list[str]:
    """Every route under /manage/ in the URL configuration (any app), with 1 for each path argument."""
    found: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif route.startswith("manage/"):
                found.append("/" + re.sub(r"<[^>]+>", "1", route))

    walk(get_resolver().url_patterns, "")
    return sorted(found)


def test_it_finds_the_manage_routes_of_every_app():
    # Guards the redirect test below against an empty list: desktops, tenants and billing pages.
    assert {"/manage/", "/manage/pools/1/", "/manage/members/", "/manage/billing/"} <= set(manage_routes())


@pytest.mark.parametrize("new", manage_routes())
def test_it_redirects_old_admin_console_links_permanently(new, client):
    # given a bookmark of the page's old address, with a query
    old = new.replace("/manage/", "/admin-console/", 1)
    # when it is opened, then it is sent on for good to the same page, query kept
    response = client.get(f"{old}?period=2025-01")
    assert response.status_code == 301
    assert response["Location"] == f"{new}?period=2025-01"


def test_it_shows_time_to_ready_per_template_on_the_dashboard(admin, alice, bob, world):
    from django.utils import timezone

    from desktops.choices import LaunchKind
    from desktops.models import LaunchTiming

    # given alice's cold launches of 10 s and 30 s and a warm one of 1 s, and bob's 99 s one
    desktop = DesktopFactory(world=alice)
    now = timezone.now()
    for kind, seconds in ((LaunchKind.COLD, 10.0), (LaunchKind.COLD, 30.0), (LaunchKind.WARM, 1.0)):
        LaunchTiming.objects.create(
            tenant=alice.tenant,
            desktop=desktop,
            template=desktop.template,
            kind=kind,
            requested_at=now,
            seconds=seconds,
        )
    theirs = DesktopFactory(world=bob)
    LaunchTiming.objects.create(
        tenant=bob.tenant, desktop=theirs, template=theirs.template, kind=LaunchKind.COLD, seconds=99.0
    )
    # when the admin opens the dashboard, then each row shows its launches, p50 and p95, and bob's is absent
    page = html(admin.get("/manage/"))
    cold = re.search(rf'data-testid="ready-{desktop.template.pk}-cold">(.*?)</tr>', page, re.S)[1]
    assert ">2<" in cold and "20.0 s" in cold and "29.0 s" in cold
    warm = re.search(rf'data-testid="ready-{desktop.template.pk}-warm">(.*?)</tr>', page, re.S)[1]
    assert "1.0 s" in warm
    assert f'data-testid="ready-{theirs.template.pk}-' not in page and "99.0 s" not in page
