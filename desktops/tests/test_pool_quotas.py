"""Pools obey their tenant's quotas, also when refills and requests race, and say on the pool what holds them back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from desktops.choices import DesktopKind, DesktopState
from desktops.models import Desktop, Pool
from desktops.services import pools
from tenants.choices import TenantStatus
from tenants.models import ApiToken
from tenants.services.tokens import create_token
from tests.concurrency import at_once, post, require_postgresql
from tests.factories import MembershipFactory
from tests.fixtures import api_client, login_client

REFILLS = 20


def _pool(world, template, *, size: int = 10, **fields) -> Pool:
    return Pool.objects.create(
        tenant=world.tenant, template=template, name="Ubuntu pool", min_ready=size, max_size=size, **fields
    )


def _running(world, template, *, user=None, pool=None) -> Desktop:
    return Desktop.objects.create(
        tenant=world.tenant,
        user=user,
        template=template,
        pool=pool,
        kind=DesktopKind.POOLED if pool else DesktopKind.PERSONAL,
        name="running",
        vcpus=template.vcpus,
        memory_mib=template.memory_mib,
        state=DesktopState.RUNNING,
    )


def _refill(pool: Pool):
    return lambda: pools.refill(Pool.objects.select_related("tenant", "template").get(pk=pool.pk))


@pytest.mark.parametrize(
    ("quota", "value", "code"),
    [
        ("quota_vcpus", 8, "quota_vcpus"),
        ("quota_ram_mib", 4 * 2048, "quota_ram"),
        ("quota_desktops", 4, "quota_desktops"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_it_refills_only_as_far_as_the_tenants_quota_under_simultaneous_refills(alice, template, quota, value, code):
    require_postgresql()
    # Given a pool wanting 10 warm desktops, a tenant quota with room for 4 (2 vCPU / 2 GiB each), one taken
    setattr(alice.tenant, quota, value)
    alice.tenant.save()
    _running(alice, template, user=alice.member)
    pool = _pool(alice, template)
    # When 20 refills run at the same moment (beat and claims race like this)
    results = at_once([_refill(pool)] * REFILLS)
    # Then 3 pooled desktops were made in all, and the pool says which quota holds it back
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(results) == 3
    assert Desktop.objects.filter(pool=pool).count() == 3
    body = api_client(alice.admin, alice.tenant).get(f"/api/v1/pools/{pool.pk}/").json()
    assert body["held_back"]["code"] == code and body["held_back"]["detail"]


@pytest.mark.django_db(transaction=True)
def test_it_never_overfills_a_pool_under_simultaneous_refills(alice, template):
    require_postgresql()
    # Given a pool wanting 5 and no quota
    pool = _pool(alice, template, size=5)
    # When 20 refills run at once
    results = at_once([_refill(pool)] * REFILLS)
    # Then exactly 5 desktops were made, and nothing holds the pool back
    assert sum(results) == 5 and Desktop.objects.filter(pool=pool).count() == 5
    assert api_client(alice.admin, alice.tenant).get(f"/api/v1/pools/{pool.pk}/").json()["held_back"] is None


@pytest.mark.django_db(transaction=True)
def test_it_shares_one_desktop_quota_between_refills_and_peoples_requests(alice, template):
    require_postgresql()
    # Given a quota of 6 desktops, a pool wanting 10, and 10 people asking for a desktop of their own
    alice.tenant.quota_desktops, alice.tenant.max_running_per_user = 6, 0
    alice.tenant.save()
    pool = _pool(alice, template)
    people = [MembershipFactory(tenant=alice.tenant).user for _ in range(10)]
    creates = [
        post(api_client(person, alice.tenant), "/api/v1/desktops/", {"template": template.pk, "start": False})
        for person in people
    ]
    # When the refills and the requests arrive together
    results = at_once([_refill(pool)] * 10 + creates)
    # Then 6 desktops exist in all, and every refused request names the quota
    assert not [r for r in results if isinstance(r, BaseException)], results
    answers = results[10:]
    accepted = sum(1 for status, _body in answers if status == 202)
    assert {body["code"] for status, body in answers if status != 202} <= {"quota_desktops"}
    assert sum(results[:10]) + accepted == 6
    assert Desktop.objects.filter(tenant=alice.tenant).count() == 6


def test_it_says_on_the_pool_pages_what_holds_the_refill_back_and_refills_once_there_is_room(alice, template):
    # Given a pool of 4 and a quota of 4 vCPUs (2 desktops), refilled
    alice.tenant.quota_vcpus = 4
    alice.tenant.save()
    pool = _pool(alice, template, size=4)
    assert pools.refill(pool) == 2
    # Then the pools page and the pool's own page say which limit holds it back
    admin = login_client(alice.admin, alice.tenant)
    listing = admin.get(reverse("manage:pools")).content.decode()
    assert f'data-testid="held-back-{pool.pk}" data-code="quota_vcpus"' in listing
    assert "limit of 4 running vCPUs" in listing
    page = admin.get(reverse("manage:pool", args=[pool.pk])).content.decode()
    assert 'data-testid="held-back" data-code="quota_vcpus"' in page
    # When the quota is raised, the next refill fills the pool and the note goes
    alice.tenant.quota_vcpus = 8
    alice.tenant.save()
    assert pools.refill(pool) == 2
    assert 'data-testid="held-back' not in admin.get(reverse("manage:pools")).content.decode()
    assert api_client(alice.admin, alice.tenant).get(f"/api/v1/pools/{pool.pk}/").json()["held_back"] is None


def test_it_says_a_suspended_tenants_pool_is_not_refilled(alice, template):
    pool = _pool(alice, template, size=2)
    alice.tenant.status = TenantStatus.SUSPENDED
    alice.tenant.save()
    assert pools.refill(pool) == 0
    assert pools.held_back(Pool.objects.get(pk=pool.pk)).code == "tenant_suspended"


def test_it_hands_out_a_running_warm_desktop_when_the_pool_fills_the_vcpu_quota(alice, template):
    # Given two running warm desktops that use the whole vCPU quota between them
    alice.tenant.quota_vcpus = 2 * template.vcpus
    alice.tenant.save()
    pool = _pool(alice, template, size=2)
    warm = [_running(alice, template, pool=pool) for _ in range(2)]
    # When a member launches: the warm desktop already counts, handing it over uses nothing more
    response = api_client(alice.member, alice.tenant).post(
        "/api/desktop/start", {"template": template.pk}, format="json"
    )
    # Then it is theirs at once
    assert response.status_code == 200 and response.json()["desktop"]["id"] in {d.pk for d in warm}


def test_it_refuses_a_hibernated_warm_desktop_that_would_break_the_vcpu_quota(alice, template):
    # Given a hibernated warm desktop, and the vCPU quota used up by a running one
    alice.tenant.quota_vcpus = template.vcpus
    alice.tenant.save()
    pool = _pool(alice, template, size=1, warm_state=Pool.WarmState.HIBERNATED)
    Desktop.objects.create(
        tenant=alice.tenant,
        template=template,
        pool=pool,
        kind=DesktopKind.POOLED,
        name="asleep",
        vcpus=template.vcpus,
        memory_mib=template.memory_mib,
        state=DesktopState.HIBERNATED,
    )
    _running(alice, template, user=alice.admin)
    # When a member launches, waking it would need room the quota does not have
    response = api_client(alice.member, alice.tenant).post(
        "/api/desktop/start", {"template": template.pk}, format="json"
    )
    # Then it is refused with the quota's code and stays in the pool
    assert response.status_code == 409 and response.json()["code"] == "quota_vcpus"
    assert Desktop.objects.get(name="asleep").user is None


# The statements one warm claim by API token makes in its steady state (token used within the minute),
# transaction control not counted: bench/claim.py prints the same figure. Raise it only on purpose
# (15: the answer carries the disposable desktops' labels since issue 20; 16: each launch records its time to
# ready since issue 13, one INSERT; 6 since issue 21: the token, the template, the tenant's lock, the claim's one
# statement (desktops.services.warm_claim), the audit event and the home's hot-plug operation).
CLAIM_STATEMENTS = 6


def test_a_warm_claim_by_token_stays_within_its_statement_budget(alice, template):
    # Given a warm desktop and a member's token, used a moment ago
    pool = _pool(alice, template, size=1)
    warm = _running(alice, template, pool=pool)
    token, raw = create_token(membership=alice.member.memberships.get(tenant=alice.tenant), name="script")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    # When the member launches the template
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/desktop/start", {"template": template.pk}, format="json")
    # Then the warm desktop is theirs, and the claim read and wrote no more than its budget
    assert response.status_code == 200 and response.json()["desktop"]["id"] == warm.pk
    statements = [q["sql"] for q in captured.captured_queries]
    counted = [sql for sql in statements if sql.split()[0] not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")]
    assert len(counted) <= CLAIM_STATEMENTS, "\n".join(counted)
