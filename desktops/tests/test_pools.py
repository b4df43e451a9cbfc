"""Warm pools: refill to the minimum, claim exactly once, recycle after use."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from desktops.choices import DesktopKind, DesktopState
from desktops.models import Desktop, DesktopTemplate, Pool
from desktops.services import pools
from desktops.tests.factories import DesktopFactory, PoolFactory
from quetzal.errors import NotFound, ServiceError
from tests.factories import MembershipFactory
from tests.fixtures import api_client
from tests.services import require


@pytest.fixture
def pool(alice, template) -> Pool:
    return PoolFactory(world=alice, template=template, name="Ubuntu pool", min_ready=3, max_size=5)


def test_it_refills_to_min_ready(pool, host, work):
    # Given an empty pool with min_ready 3
    with work():
        created = pools.refill(pool)
    # Then three pooled desktops were made and are running, unassigned
    assert created == 3
    warm = Desktop.objects.filter(pool=pool, user__isnull=True, state=DesktopState.RUNNING)
    assert warm.count() == 3 and all(d.kind == DesktopKind.POOLED for d in warm)
    # And a second pass makes nothing more
    assert pools.refill(pool) == 0


def test_it_hands_a_warm_desktop_instantly_and_replaces_it_after_use(alice, pool, host, work):
    with work():
        pools.refill(pool)
    client = api_client(alice.member, alice.tenant)
    with work():
        response = client.post("/api/desktop/start", {"template": pool.template_id}, format="json")
    # A warm desktop needs no operation: it is running and assigned at once (200, not 202).
    assert response.status_code == 200
    body = response.json()
    assert body["operation"] is None and body["desktop"]["state"] == "running" and body["desktop"]["console_url"]
    claimed = Desktop.objects.get(pk=body["desktop"]["id"])
    assert claimed.user == alice.member and claimed.pool == pool
    # The refill that the claim triggered brought the pool back to three ready
    assert pool.ready_count() == 3
    # When the person is done, the desktop is destroyed (not reused) and the pool stays full
    with work():
        client.post(f"/api/v1/desktops/{claimed.pk}/stop/")
    assert Desktop.objects.get(pk=claimed.pk).state == DesktopState.DELETED
    with work():
        pools.refill(pool)
    assert pool.ready_count() == 3


def test_it_never_exceeds_max_size(alice, pool, host, work):
    pool.min_ready, pool.max_size = 3, 4
    pool.save()
    with work():
        pools.refill(pool)
    for member in [MembershipFactory(tenant=alice.tenant).user for _ in range(3)]:
        pools.claim(tenant=alice.tenant, user=member, template=pool.template)
    with work():
        pools.refill(pool)
    assert Desktop.objects.filter(pool=pool).exclude(state=DesktopState.DELETED).count() == 4


def test_it_hibernates_warm_desktops_for_the_second_level(alice, pool, host, work):
    pool.warm_state = Pool.WarmState.HIBERNATED
    pool.min_ready = 1
    pool.save()
    with work():
        pools.refill(pool)
    assert Desktop.objects.get(pool=pool).state == DesktopState.HIBERNATED
    with work():
        desktop, operation = pools.claim(tenant=alice.tenant, user=alice.member, template=pool.template)
    assert operation.kind == "start"
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.RUNNING


@pytest.mark.django_db(transaction=True)
def test_it_never_hands_one_desktop_to_two_people(alice, template, tmp_path, image):
    require(connection.vendor == "postgresql", "PostgreSQL (row locks with SKIP LOCKED)")
    # Given 5 warm desktops and 12 people claiming at the same moment
    pool = PoolFactory(world=alice, template=template, name="p", min_ready=5, max_size=5)
    alice.tenant.max_running_per_user = 0
    alice.tenant.save()
    for _ in range(5):
        DesktopFactory(world=alice, user=None, template=template, pool=pool, kind=DesktopKind.POOLED, name="warm")
    people = [MembershipFactory(tenant=alice.tenant).user for _ in range(12)]
    results: dict[int, int | None] = {}
    barrier = threading.Barrier(len(people))

    def claim(user) -> None:
        barrier.wait()
        try:
            got = pools.claim(tenant=alice.tenant, user=user, template=template)
            results[user.pk] = got[0].pk if got else None
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(user,)) for user in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly five people got a desktop, each a different one, and the rows agree
    handed = [d for d in results.values() if d is not None]
    assert len(handed) == 5 and len(set(handed)) == 5
    owners = dict(Desktop.objects.filter(pool=pool).values_list("pk", "user_id"))
    assert sorted(owners.values()) == sorted(u for u, d in results.items() if d is not None)


def _private(world, image, name: str = "Private") -> DesktopTemplate:
    return DesktopTemplate.objects.create(name=name, image=image, visibility="tenant", tenant=world.tenant)


def test_it_refuses_in_the_service_a_pool_of_another_tenants_template(alice, bob, image, template):
    # Given bob's private template and a pool of alice's
    bobs = _private(bob, image)
    mine = Pool.objects.create(tenant=alice.tenant, template=template, name="Mine", min_ready=0)
    # When the service is asked to make or repoint alice's pool at it, whatever the caller checked
    for pool in (None, mine):
        with pytest.raises(ServiceError) as refused:
            pools.save_pool(tenant=alice.tenant, actor=alice.admin, values={"template": bobs, "name": "x"}, pool=pool)
        # Then it refuses as if the template did not exist, and the pool still builds alice's template
        assert (refused.value.code, refused.value.status) == ("template_unavailable", 404)
    mine.refresh_from_db()
    assert mine.template_id == template.pk and Pool.objects.count() == 1


def test_it_refuses_in_the_service_another_tenants_pool(alice, bob, template):
    bobs = Pool.objects.create(tenant=bob.tenant, template=template, name="Bob's", min_ready=0)
    with pytest.raises(NotFound):
        pools.save_pool(tenant=alice.tenant, actor=alice.admin, values={"min_ready": 1}, pool=bobs)
    bobs.refresh_from_db()
    assert bobs.min_ready == 0


def test_it_builds_nothing_from_a_template_its_tenant_may_not_launch(alice, bob, image, host, work):
    # Given a pool of alice's pointed at bob's private template (as the unchecked update path once allowed)
    pool = Pool.objects.create(tenant=alice.tenant, template=_private(bob, image), name="Leaked", min_ready=2)
    # When the pool refills: no desktop is made from the other tenant's image
    with work():
        assert pools.refill(pool) == 0
    assert not Desktop.objects.filter(pool=pool).exists()
