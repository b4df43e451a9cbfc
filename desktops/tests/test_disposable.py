"""Disposable desktops on libvirt's test driver: N at once with a time to live and labels, bounded by the quotas,
deleted at expiry by the beat's reconcile round, torn down by label, and made by a template-scoped token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from desktops.models import Desktop, Operation
from desktops.tests.factories import DesktopTemplateFactory
from hosts.hypervisor import get_hypervisor
from tests.fixtures import api_client

URL = "/api/v1/disposable-desktops/"


def _make(client, work, **body):
    with work():
        return client.post(URL, body, format="json")


@pytest.fixture(autouse=True)
def _many_running(alice):
    """Runs of several desktops: the default of two running per person is not what these tests are about."""
    alice.tenant.max_running_per_user = 0
    alice.tenant.save()


def _domains(host) -> set[int]:
    return {d.desktop_id for d in get_hypervisor(host.uri).list_domains()}


# Committed for real, so the operations run (eagerly) before the answer, as a worker would while it waits.
@pytest.mark.django_db(transaction=True)
def test_it_makes_a_labelled_run_that_is_ready_when_it_answers(alice, host, template, work):
    client = api_client(alice.member, alice.tenant)
    # When a script asks for three disposable desktops that live 30 minutes, and waits for them
    before = timezone.now()
    response = _make(client, work, template=template.pk, count=3, ttl_minutes=30, labels=["run-7", "ci"], wait="ready")
    # Then they run, carry the labels and the expiry, and exist on the host
    assert response.status_code == 200, response.json()
    desktops = response.json()["desktops"]
    assert [d["state"] for d in desktops] == ["running"] * 3
    assert [d["name"] for d in desktops] == ["run-7-1", "run-7-2", "run-7-3"]
    assert all(sorted(d["labels"]) == ["ci", "run-7"] for d in desktops)
    for row in Desktop.objects.filter(pk__in=[d["id"] for d in desktops]):
        assert before + timedelta(minutes=30) <= row.expires_at <= timezone.now() + timedelta(minutes=30)
    assert {d["id"] for d in desktops} <= _domains(host)
    # And the run is listed by its label
    listed = client.get(URL, {"label": "run-7"}).json()
    assert sorted(d["id"] for d in listed) == sorted(d["id"] for d in desktops)


def test_it_refuses_a_run_the_quota_cannot_hold_whole(alice, host, template, work):
    alice.tenant.quota_desktops, alice.tenant.max_running_per_user = 2, 0
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    response = _make(client, work, template=template.pk, count=3, ttl_minutes=10)
    assert response.status_code == 409, response.json()
    assert response.json()["code"].startswith("quota")
    # Nothing of the batch was kept or queued
    assert not Desktop.objects.filter(tenant=alice.tenant).exists()
    assert not Operation.objects.filter(desktop__tenant=alice.tenant).exists()


def test_it_deletes_expired_desktops_in_the_beats_reconcile_round(alice, host, template, work):
    from desktops.tasks import reconcile_all

    client = api_client(alice.member, alice.tenant)
    made = _make(client, work, template=template.pk, count=2, ttl_minutes=5, labels=["short"]).json()
    ids = [d["id"] for d in made["desktops"]]
    keeper = _make(client, work, template=template.pk, count=1, ttl_minutes=60).json()["desktops"][0]
    assert set(Desktop.objects.filter(tenant=alice.tenant).values_list("state", flat=True)) == {"running"}
    # Given the first two's time is up
    Desktop.objects.filter(pk__in=ids).update(expires_at=timezone.now() - timedelta(seconds=1))
    # When the beat's reconcile round runs
    with work():
        reconcile_all.delay()
    # Then they are deleted and gone from the host; the one with time left runs on
    assert set(Desktop.objects.filter(pk__in=ids).values_list("state", flat=True)) == {"deleted"}
    assert not set(ids) & _domains(host)
    assert Desktop.objects.get(pk=keeper["id"]).state == "running" and keeper["id"] in _domains(host)


def test_it_tears_a_run_down_by_label_and_leaves_other_runs(alice, bob, host, template, work):
    client = api_client(alice.member, alice.tenant)
    first = _make(client, work, template=template.pk, count=2, ttl_minutes=60, labels=["a"]).json()["desktops"]
    second = _make(client, work, template=template.pk, count=1, ttl_minutes=60, labels=["b"]).json()["desktops"]
    # Another tenant's teardown of the same label reaches nothing
    with work():
        assert api_client(bob.admin, bob.tenant).delete(f"{URL}?label=a").json()["operations"] == []
    with work():
        response = client.delete(f"{URL}?label=a")
    assert response.status_code == 202 and len(response.json()["operations"]) == 2
    assert {Desktop.objects.get(pk=d["id"]).state for d in first} == {"deleted"}
    assert Desktop.objects.get(pk=second[0]["id"]).state == "running"
    assert client.delete(URL).status_code == 400  # a label is required: never "everything"


@pytest.mark.parametrize(
    "body",
    [
        {"count": 51, "ttl_minutes": 5},
        {"count": 0, "ttl_minutes": 5},
        {"count": 1, "ttl_minutes": 0},
        {"count": 1},
        {"count": 1, "ttl_minutes": 5, "labels": ["Not A Label"]},
        {"count": 1, "ttl_minutes": 5, "labels": ["a"] * 9},
        {"count": 1, "ttl_minutes": 5, "wait": "forever"},
    ],
)
def test_it_refuses_bad_runs(alice, host, template, work, body):
    response = _make(api_client(alice.member, alice.tenant), work, template=template.pk, **body)
    assert response.status_code == 400, response.json()
    assert not Desktop.objects.exists()


def test_it_lets_a_template_token_make_and_drive_a_run_of_that_template_only(alice, host, template, image, work):
    client = api_client(alice.member, alice.tenant)
    raw = client.post(
        "/api/v1/automation-tokens/", {"name": "ci", "access": "input", "templates": [template.pk]}, format="json"
    ).json()["token"]
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    made = _make(agent, work, template=template.pk, count=2, ttl_minutes=10, labels=["agent"])
    assert made.status_code == 202, made.json()
    desktop_id = made.json()["desktops"][0]["id"]
    assert agent.get(f"/api/v1/desktops/{desktop_id}/screenshot/").status_code == 200
    other = DesktopTemplateFactory(name="Other", image=image, vcpus=1, memory_mib=512, disk_gib=10)
    refused = _make(agent, work, template=other.pk, count=1, ttl_minutes=10)
    assert refused.status_code == 404 and refused.json()["code"] == "template_unavailable"
    with work():
        assert len(agent.delete(f"{URL}?label=agent").json()["operations"]) == 2
