"""The tenant admin console pages: dashboard, desktops, pools (through the pools service)."""

from __future__ import annotations

import json
import re

import pytest

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
    page = html(admin.get("/admin-console/"))
    assert re.search(r'data-testid="running">3<', page)
    assert re.search(r'data-testid="active-people">2 <small>of 3</small>', page)
    assert "idle, stopping in" in page
    chart = json.loads(re.search(r'<script id="hours-chart-data" type="application/json">(.*?)</script>', page)[1])
    assert len(chart["x"]) == len(chart["y"]) == 30 and round(sum(chart["y"]), 1) == 21.0
    # The figures refresh by themselves from their own URL
    assert 'hx-get="/admin-console/figures/"' in page
    figures = html(admin.get("/admin-console/figures/"))
    assert figures.startswith('\n<div id="figures"') or figures.lstrip().startswith('<div id="figures"')
    assert "<html" not in figures


def test_it_lists_every_desktop_of_the_tenant_with_filters(admin, alice, world):
    page = html(admin.get("/admin-console/desktops/"))
    assert page.count("data-desktop-row=") == 4
    idle = html(admin.get("/admin-console/desktops/?state=idle"))
    # idle: running with no console open (the member's and the warm pool's)
    assert idle.count("data-desktop-row=") == 2
    mine = html(admin.get(f"/admin-console/desktops/?person={alice.member.pk}"))
    assert mine.count("data-desktop-row=") == 2
    stopped = html(admin.get("/admin-console/desktops/?state=stopped&template=nonsense"))
    assert stopped.count("data-desktop-row=") == 1


def test_it_shows_pools_with_their_warm_count(admin, alice, world):
    # Given one warm desktop in the pool, and one the pool handed out (not warm any more)
    DesktopFactory(
        world=alice, template=world["ubuntu"], lived_in=True, user=alice.owner, kind="pooled", pool=world["pool"]
    )
    page = html(admin.get("/admin-console/pools/"))
    assert f'data-testid="warm-{world["pool"].pk}">1<' in page and "of 2" in page


def test_it_creates_a_pool_through_the_service(admin, world):
    response = admin.post(
        "/admin-console/pools/",
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
    too_small = admin.post(
        "/admin-console/pools/", {**base, "template": world["windows"].pk, "min_ready": 5, "max_size": 2}
    )
    assert too_small.status_code == 400 and b"Must not be more than the maximum size." in too_small.content
    # A second pool for a template that has one is refused on the form, not with a 500
    again = admin.post("/admin-console/pools/", {**base, "template": world["ubuntu"].pk, "min_ready": 1, "max_size": 2})
    assert again.status_code == 400 and b"already exists" in again.content
    assert Pool.objects.count() == 1


def test_it_changes_and_removes_a_pool(admin, world):
    pool = world["pool"]
    edit = f"/admin-console/pools/{pool.pk}/"
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
    assert admin.post(f"/admin-console/pools/{pool.pk}/delete/").status_code == 302
    assert not Pool.objects.filter(pk=pool.pk).exists()
    assert AuditEvent.objects.filter(action="pool.delete").exists()
