"""The lifecycle end to end against libvirt's test driver, through the API and the task."""

from __future__ import annotations

from desktops.choices import DesktopState, OperationStatus
from desktops.models import Desktop, Operation
from hosts.hypervisor import get_hypervisor
from hosts.models import Allocation
from tests.fixtures import api_client


def _state(desktop_id: int) -> str:
    return Desktop.objects.get(pk=desktop_id).state


def test_it_launches_stops_starts_and_deletes_without_leftovers(alice, host, template, work):
    client = api_client(alice.member, alice.tenant)
    # Given a member launching a template
    with work():
        response = client.post("/api/desktop/start", {"template": template.pk}, format="json")
    # Then the answer is 202 with an operation to follow, and the worker took it to running
    assert response.status_code == 202
    body = response.json()
    desktop_id, operation_url = body["desktop"]["id"], body["operation"]["url"]
    operation = client.get(operation_url).json()
    assert operation["status"] == "succeeded"
    assert [s["step"] for s in operation["steps"]] == [
        "placing",
        "cloning disk",
        "writing seed",
        "connecting network",
        "defining",
        "booting",
        "attaching home folder",
        "running",
    ]
    assert _state(desktop_id) == DesktopState.RUNNING
    hv = get_hypervisor(host.uri)
    desktop = Desktop.objects.get(pk=desktop_id)
    assert [(d.name, d.desktop_id, d.state) for d in hv.list_domains()] == [
        (desktop.domain_name, desktop_id, "running")
    ]
    assert hv.volume_exists("default", f"{desktop.domain_name}.qcow2")

    # When they stop it and launch again: the same desktop comes back (files preserved)
    with work():
        assert client.post(f"/api/v1/desktops/{desktop_id}/stop/").status_code == 202
    assert _state(desktop_id) == DesktopState.STOPPED
    assert Desktop.objects.get(pk=desktop_id).status_reason == "Stopped on request"
    with work():
        again = client.post("/api/desktop/start", {"os_type": "linux"}, format="json").json()
    assert again["desktop"]["id"] == desktop_id and again["operation"]["kind"] == "start"
    assert _state(desktop_id) == DesktopState.RUNNING

    # When they delete it: no domain, no volumes, no allocation remain
    with work():
        assert client.delete(f"/api/v1/desktops/{desktop_id}/").status_code == 202
    assert _state(desktop_id) == DesktopState.DELETED
    assert hv.list_domains() == []
    assert not hv.volume_exists("default", f"{desktop.domain_name}.qcow2")
    assert not hv.volume_exists("default", f"{desktop.domain_name}-seed.iso")
    assert not Allocation.objects.filter(desktop_id=desktop_id).exists()


def test_it_hibernates_snapshots_and_reverts(alice, host, template, work):
    client = api_client(alice.member, alice.tenant)
    with work():
        desktop_id = client.post("/api/desktop/start", {"template": template.pk}, format="json").json()["desktop"]["id"]
    with work():
        assert client.post(f"/api/v1/desktops/{desktop_id}/snapshot/", {"snapshot": "clean"}).status_code == 202
    assert [s["name"] for s in client.get(f"/api/v1/desktops/{desktop_id}/").json()["snapshots"]] == ["clean"]
    with work():
        client.post(f"/api/v1/desktops/{desktop_id}/hibernate/")
    assert _state(desktop_id) == DesktopState.HIBERNATED
    hv = get_hypervisor(host.uri)
    assert hv.has_managed_save(Desktop.objects.get(pk=desktop_id).domain_name)
    with work():
        client.post(f"/api/v1/desktops/{desktop_id}/start/")
    assert _state(desktop_id) == DesktopState.RUNNING
    with work():
        assert client.post(f"/api/v1/desktops/{desktop_id}/revert/", {"snapshot": "clean"}).status_code == 202
    assert Operation.objects.filter(desktop_id=desktop_id, kind="revert").get().status == OperationStatus.SUCCEEDED
    refused = client.post(f"/api/v1/desktops/{desktop_id}/revert/", {"snapshot": "nope"})
    assert refused.status_code == 404 and refused.json()["code"] == "snapshot_not_found"


def test_it_suspends_resumes_and_reboots(alice, host, template, work):
    client = api_client(alice.member, alice.tenant)
    with work():
        desktop_id = client.post("/api/desktop/start", {"template": template.pk}, format="json").json()["desktop"]["id"]
    with work():
        client.post(f"/api/v1/desktops/{desktop_id}/suspend/")
    assert _state(desktop_id) == DesktopState.SUSPENDED
    with work():
        client.post(f"/api/v1/desktops/{desktop_id}/resume/")
    assert _state(desktop_id) == DesktopState.RUNNING
    with work():
        response = client.post(f"/api/v1/desktops/{desktop_id}/reboot/")
    assert response.status_code == 202
    assert Operation.objects.get(desktop_id=desktop_id, kind="reboot").status == OperationStatus.SUCCEEDED


def test_it_rebuilds_a_stopped_desktop_from_its_template(alice, host, template, work):
    client = api_client(alice.member, alice.tenant)
    with work():
        desktop_id = client.post("/api/v1/desktops/", {"template": template.pk, "start": False}, format="json").json()[
            "desktop"
        ]["id"]
    assert _state(desktop_id) == DesktopState.STOPPED
    with work():
        assert client.post(f"/api/v1/desktops/{desktop_id}/rebuild/").status_code == 202
    assert _state(desktop_id) == DesktopState.STOPPED
    assert Desktop.objects.get(pk=desktop_id).status_reason == "Rebuilt from its template"
    assert len(get_hypervisor(host.uri).list_domains()) == 1
