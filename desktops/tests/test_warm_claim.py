"""The warm claim in one statement (desktops.services.warm_claim): the same answer, rows and guarantees."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from desktops.api import serializers as s
from desktops.api.views import DESKTOP_READ
from desktops.choices import DesktopKind, DesktopState, LaunchKind, OperationKind
from desktops.models import Desktop, DesktopLabel, DesktopSnapshot, LaunchTiming, Operation, Pool
from desktops.tests.factories import DesktopTemplateFactory
from hosts.models import NetworkLease, TenantNetwork
from tenants.models import AuditEvent
from tests.concurrency import at_once, post, require_postgresql
from tests.factories import MembershipFactory
from tests.fixtures import api_client

LAUNCH = "/api/desktop/start"


def _pool(world, template, *, size: int = 5) -> Pool:
    return Pool.objects.create(tenant=world.tenant, template=template, name="warm", min_ready=size, max_size=size)


def _warm(world, template, pool, *, host=None, **fields) -> Desktop:
    return Desktop.objects.create(
        tenant=world.tenant,
        template=template,
        pool=pool,
        kind=DesktopKind.POOLED,
        name="warm",
        vcpus=template.vcpus,
        memory_mib=template.memory_mib,
        state=DesktopState.RUNNING,
        host=host,
        **fields,
    )


def _statuses(answers) -> Counter:
    assert not [a for a in answers if isinstance(a, BaseException)], answers
    return Counter(status for status, _body in answers)


def _fresh_answer(desktop_id: int) -> dict:
    """The desktop as the API answered before the one statement: read again with everything, serialised."""
    return json.loads(JSONRenderer().render(s.DesktopSerializer(DESKTOP_READ.get(pk=desktop_id)).data))


def test_it_answers_a_warm_claim_as_a_fresh_read_of_the_desktop_would(alice, template, host):
    # Given a warm desktop that is placed, on the tenant's network, labelled, with a snapshot, ready for input
    require_postgresql()
    now = timezone.now()
    warm = _warm(alice, template, _pool(alice, template), host=host, running_since=now, ready_at=now)
    network = TenantNetwork.objects.create(
        tenant=alice.tenant, host=host, name="quetzal-t1", bridge="qzt1", subnet="10.200.7.0/24", subnet_index=7
    )
    NetworkLease.objects.create(network=network, desktop_id=warm.pk, mac="52:54:00:00:07:09", ip="10.200.7.9")
    for value in ("demo", "run-7"):
        DesktopLabel.objects.create(tenant=alice.tenant, desktop=warm, value=value)
    DesktopSnapshot.objects.create(desktop=warm, name="before-update", running=True)
    # When a member launches the template
    response = api_client(alice.member, alice.tenant).post(LAUNCH, {"template": template.pk}, format="json")
    # Then the warm desktop is theirs, and the answer is what reading it again shows, field for field
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["desktop"]["id"] == warm.pk and body["operation"] is None
    assert body["desktop"] == _fresh_answer(warm.pk)
    assert body["desktop"]["network"]["ip"] == "10.200.7.9" and body["desktop"]["labels"] == ["demo", "run-7"]
    assert [snapshot["name"] for snapshot in body["desktop"]["snapshots"]] == ["before-update"]
    assert body["desktop"]["owner"] == alice.member.email and body["desktop"]["host"] == host.name
    # And the claim left its rows: the audit event, the warm launch (ready at once), the home's hot-plug
    claimed = AuditEvent.objects.get(action="desktop.claim")
    assert (claimed.tenant_id, claimed.actor_id, claimed.target_id) == (alice.tenant.pk, alice.member.pk, str(warm.pk))
    assert claimed.data == {"pool": warm.pool_id} and claimed.target_repr == "warm"
    timing = LaunchTiming.objects.get()
    assert (timing.kind, timing.desktop_id, timing.signal, timing.seconds) == (LaunchKind.WARM, warm.pk, "already", 0)
    assert Operation.objects.get(desktop=warm).kind == OperationKind.ATTACH_HOME


def test_it_answers_a_claim_of_an_unplaced_desktop_without_host_or_network(alice, template):
    # Given a warm desktop with no host, lease, labels or snapshots (and not ready for input yet)
    require_postgresql()
    warm = _warm(alice, template, _pool(alice, template))
    # When a member launches the template
    response = api_client(alice.member, alice.tenant).post(LAUNCH, {"template": template.pk}, format="json")
    # Then the answer still matches a fresh read, and the launch waits for the guest's signal
    assert response.status_code == 200 and response.json()["desktop"] == _fresh_answer(warm.pk)
    assert response.json()["desktop"]["host"] is None and response.json()["desktop"]["network"] is None
    assert LaunchTiming.objects.get().ready_at is None


def test_it_claims_only_from_the_launching_tenants_pool(alice, bob, template):
    # Given a warm desktop in Alice's pool of a template Bob's people may launch too
    require_postgresql()
    warm = _warm(alice, template, _pool(alice, template))
    # When Bob's member launches it
    response = api_client(bob.member, bob.tenant).post(LAUNCH, {"template": template.pk}, format="json")
    # Then they get a new desktop of their own tenant, and Alice's warm one stays in her pool
    assert response.status_code == 202, response.content
    assert Desktop.objects.get(pk=response.json()["desktop"]["id"]).tenant_id == bob.tenant.pk
    warm.refresh_from_db()
    assert warm.user is None and not AuditEvent.objects.filter(action="desktop.claim").exists()


@pytest.mark.django_db(transaction=True)
def test_it_hands_simultaneous_people_different_warm_desktops_and_the_rest_new_ones(alice, template):
    require_postgresql()
    # Given a pool with 5 warm desktops and 10 people launching the template at once
    pool = _pool(alice, template)
    warm = {_warm(alice, template, pool).pk for _ in range(5)}
    people = [MembershipFactory(tenant=alice.tenant).user for _ in range(10)]
    answers = at_once([post(api_client(user, alice.tenant), LAUNCH, {"template": template.pk}) for user in people])
    # Then 5 get a warm one each (200, all different), the other 5 a new one on its way (202)
    assert _statuses(answers) == {200: 5, 202: 5}
    handed = [body["desktop"]["id"] for status, body in answers if status == 200]
    assert sorted(handed) == sorted(warm)
    # And everyone has exactly one desktop: nobody got two, no warm desktop went to two people
    assert Counter(Desktop.objects.values_list("user_id", flat=True)) == Counter(user.pk for user in people)
    assert AuditEvent.objects.filter(action="desktop.claim").count() == 5
    assert LaunchTiming.objects.filter(kind=LaunchKind.WARM).count() == 5


@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_persons_running_limit_across_simultaneous_claims_of_two_templates(alice, image, template):
    require_postgresql()
    # Given a person who may run one desktop, and a warm desktop in each of two templates' pools
    alice.tenant.max_running_per_user = 1
    alice.tenant.save(update_fields=["max_running_per_user"])
    other = DesktopTemplateFactory(name="Fedora", os_family="linux", image=image, vcpus=2, memory_mib=2048)
    for each in (template, other):
        _warm(alice, each, _pool(alice, each, size=1))
    # When they launch both, five times each, at once
    calls = [post(api_client(alice.member, alice.tenant), LAUNCH, {"template": each.pk}) for each in (template, other)]
    answers = at_once([call for call in calls for _ in range(5)])
    # Then one template's launches all get its warm desktop, the other's are refused with the limit's code
    assert _statuses(answers) == {200: 5, 409: 5}
    assert {body["code"] for status, body in answers if status == 409} == {"limit_running_per_user"}
    assert Desktop.objects.filter(user=alice.member).count() == 1
    assert Desktop.objects.filter(user__isnull=True).count() == 1
