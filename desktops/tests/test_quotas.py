"""Quotas and running limits hold when many requests arrive at once, and /api/desktop/start makes one desktop.

The races run on PostgreSQL with real HTTP requests (one APIClient per thread, each on its own connection):
exactly the allowed number is accepted, every other request gets 409 with the limit's code, and the rows agree.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import transaction

from desktops.choices import DesktopKind, DesktopState, OperationKind
from desktops.models import Desktop, Operation, Pool
from desktops.services import quotas
from tests.concurrency import at_once, post, require_postgresql
from tests.factories import MembershipFactory
from tests.fixtures import api_client

REQUESTS = 20


def _people(world, count: int = REQUESTS):
    return [MembershipFactory(tenant=world.tenant).user for _ in range(count)]


def _stopped(world, template, user) -> Desktop:
    return Desktop.objects.create(
        tenant=world.tenant,
        user=user,
        template=template,
        name="mine",
        vcpus=template.vcpus,
        memory_mib=template.memory_mib,
        state=DesktopState.STOPPED,
    )


def _statuses(answers) -> Counter:
    assert not [a for a in answers if isinstance(a, BaseException)], answers
    return Counter(status for status, _body in answers)


def _refusal_codes(answers) -> set[str]:
    return {body["code"] for status, body in answers if status == 409}


@pytest.mark.django_db(transaction=True)
def test_it_creates_exactly_the_desktop_quota_from_simultaneous_requests(alice, template):
    require_postgresql()
    # Given a quota of 3 desktops and 20 people asking for one (not started: only the count applies)
    alice.tenant.quota_desktops = 3
    alice.tenant.save()
    clients = [api_client(person, alice.tenant) for person in _people(alice)]
    # When they all ask at the same moment
    answers = at_once(
        [post(client, "/api/v1/desktops/", {"template": template.pk, "start": False}) for client in clients]
    )
    # Then 3 are accepted, 17 refused with the quota's code, and 3 desktops exist
    assert _statuses(answers) == {202: 3, 409: REQUESTS - 3}
    assert _refusal_codes(answers) == {"quota_desktops"}
    assert Desktop.objects.filter(tenant=alice.tenant).count() == 3


@pytest.mark.django_db(transaction=True)
def test_it_holds_the_desktop_quota_and_the_running_limit_of_one_person_together(alice, template):
    require_postgresql()
    # Given a quota of 3 desktops, a running limit of 2, and one person sending 20 creates (half to start)
    alice.tenant.quota_desktops, alice.tenant.max_running_per_user = 3, 2
    alice.tenant.save()
    clients = [api_client(alice.member, alice.tenant) for _ in range(REQUESTS)]
    bodies = [{"template": template.pk, "start": n % 2 == 0} for n in range(REQUESTS)]
    # When they all arrive at once
    answers = at_once([post(client, "/api/v1/desktops/", body) for client, body in zip(clients, bodies, strict=True)])
    # Then exactly 3 desktops were made, at most 2 of them to run, and every other request was refused by a limit
    assert _statuses(answers) == {202: 3, 409: REQUESTS - 3}
    assert _refusal_codes(answers) <= {"quota_desktops", "limit_running_per_user"}
    assert Desktop.objects.filter(user=alice.member).count() == 3
    started = Operation.objects.filter(desktop__user=alice.member, kind=OperationKind.CREATE, params__start=True)
    assert started.count() <= 2


@pytest.mark.django_db(transaction=True)
def test_it_starts_no_more_than_a_persons_running_limit_from_simultaneous_starts(alice, template):
    require_postgresql()
    # Given one person with 20 stopped desktops and a running limit of 2
    alice.tenant.max_running_per_user = 2
    alice.tenant.save()
    desktops = [_stopped(alice, template, alice.member) for _ in range(REQUESTS)]
    clients = [api_client(alice.member, alice.tenant) for _ in desktops]
    # When all 20 are started at once
    answers = at_once(
        [post(client, f"/api/v1/desktops/{d.pk}/start/") for client, d in zip(clients, desktops, strict=True)]
    )
    # Then 2 start and 18 are refused with the per-person limit's code
    assert _statuses(answers) == {202: 2, 409: REQUESTS - 2}
    assert _refusal_codes(answers) == {"limit_running_per_user"}
    assert Operation.objects.filter(kind=OperationKind.START).count() == 2


@pytest.mark.parametrize(("quota", "code"), [("quota_vcpus", "quota_vcpus"), ("quota_ram_mib", "quota_ram")])
@pytest.mark.django_db(transaction=True)
def test_it_starts_no_more_than_the_tenants_running_quota_from_simultaneous_starts(alice, template, quota, code):
    require_postgresql()
    # Given 20 people with a stopped desktop each and a tenant quota that fits exactly 5 of them running
    per_desktop = {"quota_vcpus": template.vcpus, "quota_ram_mib": template.memory_mib}[quota]
    setattr(alice.tenant, quota, 5 * per_desktop)
    alice.tenant.max_running_per_user = 0
    alice.tenant.save()
    people = _people(alice)
    desktops = [_stopped(alice, template, person) for person in people]
    clients = [api_client(person, alice.tenant) for person in people]
    # When everyone starts at the same moment
    answers = at_once(
        [post(client, f"/api/v1/desktops/{d.pk}/start/") for client, d in zip(clients, desktops, strict=True)]
    )
    # Then 5 start, 15 are refused with the quota's code
    assert _statuses(answers) == {202: 5, 409: REQUESTS - 5}
    assert _refusal_codes(answers) == {code}
    assert Operation.objects.filter(kind=OperationKind.START).count() == 5


@pytest.mark.django_db(transaction=True)
def test_it_gives_one_person_one_desktop_per_template_from_simultaneous_launches(alice, template):
    require_postgresql()
    # Given one person pressing "launch" 20 times at once (the running limit would allow two)
    clients = [api_client(alice.member, alice.tenant) for _ in range(REQUESTS)]
    answers = at_once([post(client, "/api/desktop/start", {"template": template.pk}) for client in clients])
    # Then every answer is the same one desktop, on its way (202 with the one create operation)
    assert _statuses(answers) == {202: REQUESTS}
    assert {body["desktop"]["id"] for _status, body in answers} == {Desktop.objects.get().pk}
    assert {body["operation"]["id"] for _status, body in answers} == {Operation.objects.get().pk}


@pytest.mark.django_db(transaction=True)
def test_it_hands_one_person_one_warm_desktop_from_simultaneous_launches(alice, template):
    require_postgresql()
    # Given a pool with 5 warm desktops and one person pressing "launch" 20 times at once
    pool = Pool.objects.create(tenant=alice.tenant, template=template, name="warm", min_ready=5, max_size=5)
    for _ in range(5):
        Desktop.objects.create(
            tenant=alice.tenant,
            template=template,
            pool=pool,
            kind=DesktopKind.POOLED,
            name="warm",
            vcpus=template.vcpus,
            memory_mib=template.memory_mib,
            state=DesktopState.RUNNING,
        )
    clients = [api_client(alice.member, alice.tenant) for _ in range(REQUESTS)]
    answers = at_once([post(client, "/api/desktop/start", {"template": template.pk}) for client in clients])
    # Then all answers are one warm desktop, handed over at once (200), and the other four stay in the pool
    assert _statuses(answers) == {200: REQUESTS}
    mine = Desktop.objects.get(user=alice.member)
    assert {body["desktop"]["id"] for _status, body in answers} == {mine.pk}
    assert Desktop.objects.filter(pool=pool, user__isnull=True).count() == 4


def test_it_counts_a_queued_start_against_the_running_limit(alice, template):
    # Given a running limit of 1 and two stopped desktops, the first started (no worker has run it yet)
    alice.tenant.max_running_per_user = 1
    alice.tenant.save()
    first, second = _stopped(alice, template, alice.member), _stopped(alice, template, alice.member)
    client = api_client(alice.member, alice.tenant)
    assert client.post(f"/api/v1/desktops/{first.pk}/start/").status_code == 202
    assert Desktop.objects.get(pk=first.pk).state == DesktopState.STOPPED
    # When the second is started
    response = client.post(f"/api/v1/desktops/{second.pk}/start/")
    # Then it is refused: the queued start holds the slot already
    assert response.status_code == 409 and response.json()["code"] == "limit_running_per_user"


def test_it_counts_a_queued_create_that_boots_against_the_vcpu_quota(alice, template):
    # Given room for one running desktop and one create (with start) queued
    alice.tenant.quota_vcpus, alice.tenant.max_running_per_user = template.vcpus, 0
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    assert client.post("/api/v1/desktops/", {"template": template.pk}, format="json").status_code == 202
    # Then a second one to run is refused, and one made stopped still fits
    refused = client.post("/api/v1/desktops/", {"template": template.pk}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "quota_vcpus"
    stopped = client.post("/api/v1/desktops/", {"template": template.pk, "start": False}, format="json")
    assert stopped.status_code == 202


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_lock_the_quotas_outside_a_transaction(alice):
    # A lock taken in autocommit would end before the write it guards: refused, loudly.
    with pytest.raises(RuntimeError, match=r"outside transaction\.atomic"):
        quotas.lock(alice.tenant)
    with transaction.atomic():
        assert quotas.lock(alice.tenant).pk == alice.tenant.pk


@pytest.mark.parametrize(("running_snapshot", "expected"), [(True, 409), (False, 202)])
def test_it_holds_the_running_limit_when_a_revert_would_start_a_desktop(alice, template, running_snapshot, expected):
    # Given a running limit of 1, one desktop running and a stopped one with a snapshot taken while it ran (or not)
    alice.tenant.max_running_per_user = 1
    alice.tenant.save()
    running = _stopped(alice, template, alice.member)
    Desktop.objects.filter(pk=running.pk).update(state=DesktopState.RUNNING)
    stopped = _stopped(alice, template, alice.member)
    stopped.snapshots.create(name="before", running=running_snapshot)
    client = api_client(alice.member, alice.tenant)
    # When the stopped one is reverted
    response = client.post(f"/api/v1/desktops/{stopped.pk}/revert/", {"snapshot": "before"}, format="json")
    # Then a revert that would start it is refused with the limit's code; one that leaves it stopped is queued
    assert response.status_code == expected, response.content
    if expected == 409:
        assert response.json()["code"] == "limit_running_per_user"
        assert not Operation.objects.filter(desktop=stopped, kind=OperationKind.REVERT).exists()


def test_it_counts_a_queued_revert_that_boots_against_the_running_limit(alice, template):
    # Given a running limit of 1 and a queued revert that will bring a stopped desktop up
    alice.tenant.max_running_per_user = 1
    alice.tenant.save()
    reverted, other = _stopped(alice, template, alice.member), _stopped(alice, template, alice.member)
    reverted.snapshots.create(name="up", running=True)
    client = api_client(alice.member, alice.tenant)
    assert client.post(f"/api/v1/desktops/{reverted.pk}/revert/", {"snapshot": "up"}, format="json").status_code == 202
    # When another desktop is started
    response = client.post(f"/api/v1/desktops/{other.pk}/start/")
    # Then the queued revert holds the slot
    assert response.status_code == 409 and response.json()["code"] == "limit_running_per_user"
