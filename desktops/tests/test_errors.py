"""Every refusal has its documented code and changes nothing."""

from __future__ import annotations

from desktops.choices import DesktopState
from desktops.models import Desktop, Operation
from desktops.tests.conftest import make_test_host, place_image
from tenants.choices import TenantStatus
from tests.fixtures import api_client


def _launch(client, template):
    return client.post("/api/desktop/start", {"template": template.pk}, format="json")


def test_it_refuses_a_suspended_tenant(alice, host, template):
    alice.tenant.status = TenantStatus.SUSPENDED
    alice.tenant.save()
    response = _launch(api_client(alice.member, alice.tenant), template)
    assert response.status_code == 403 and response.json()["code"] == "tenant_suspended"
    assert not Desktop.objects.exists()


def test_it_keeps_the_code_and_answers_the_message_in_the_callers_language(alice, bob, host, template):
    alice.tenant.status = TenantStatus.SUSPENDED
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    german = client.post("/api/desktop/start", {"template": template.pk}, format="json", HTTP_ACCEPT_LANGUAGE="de")
    english = client.post("/api/desktop/start", {"template": template.pk}, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert german.status_code == english.status_code == 403
    assert german.json()["code"] == english.json()["code"] == "tenant_suspended"  # the code is for programs
    said = german.json()["detail"]
    assert (
        said == f"{alice.tenant.name} ist gesperrt: nichts kann geändert werden, bis die Organisation reaktiviert ist."
    )
    assert english.json()["detail"].startswith(f"{alice.tenant.name} is suspended")
    # And the API's own answers too (an unknown address under /api/)
    missing = client.get("/api/v1/no-such-thing/", HTTP_ACCEPT_LANGUAGE="de")
    assert missing.status_code == 404 and missing.json() == {"code": "not_found", "detail": "Nicht gefunden."}
    assert not Desktop.objects.exists()


def test_it_names_the_quota_that_is_full(alice, host, template, work):
    alice.tenant.quota_vcpus = 3
    alice.tenant.max_running_per_user = 5
    alice.tenant.save()
    with work():
        assert _launch(api_client(alice.member, alice.tenant), template).status_code == 202
    response = _launch(api_client(alice.admin, alice.tenant), template)
    assert response.status_code == 409
    assert response.json() == {
        "code": "quota_vcpus",
        "detail": "Your organisation's limit of 3 running vCPUs would be exceeded.",
    }
    assert Desktop.objects.count() == 1


def test_it_limits_running_desktops_per_person(alice, host, template, work):
    alice.tenant.max_running_per_user = 1
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    with work():
        _launch(client, template)
    second = client.post("/api/v1/desktops/", {"template": template.pk}, format="json")
    assert second.status_code == 409 and second.json()["code"] == "limit_running_per_user"


def test_it_limits_the_number_of_desktops(alice, host, template, work):
    alice.tenant.quota_desktops = 1
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    with work():
        client.post("/api/v1/desktops/", {"template": template.pk, "start": False}, format="json")
    refused = client.post("/api/v1/desktops/", {"template": template.pk, "start": False}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "quota_desktops"


def test_it_refuses_an_action_in_the_wrong_state(alice, host, template, work):
    client = api_client(alice.member, alice.tenant)
    with work():
        desktop_id = client.post("/api/v1/desktops/", {"template": template.pk, "start": False}, format="json").json()[
            "desktop"
        ]["id"]
    response = client.post(f"/api/v1/desktops/{desktop_id}/hibernate/")
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    assert Desktop.objects.get(pk=desktop_id).state == DesktopState.STOPPED


def test_it_refuses_a_busy_desktop(alice, host, template):
    client = api_client(alice.member, alice.tenant)
    desktop_id = client.post("/api/desktop/start", {"template": template.pk}, format="json").json()["desktop"]["id"]
    # The create operation is still queued (no worker ran it).
    response = client.delete(f"/api/v1/desktops/{desktop_id}/")
    assert response.status_code == 409 and response.json()["code"] == "operation_in_progress"
    assert Operation.objects.filter(desktop_id=desktop_id).count() == 1


def test_it_refuses_a_template_of_another_tenant(alice, bob, host, template):
    template.visibility, template.tenant = "tenant", bob.tenant
    template.save()
    response = _launch(api_client(alice.member, alice.tenant), template)
    assert response.status_code == 404 and response.json()["code"] == "template_unavailable"


def test_it_refuses_malformed_bodies(alice, host, template):
    client = api_client(alice.member, alice.tenant)
    response = client.post("/api/desktop/start", {"os_type": "amiga"}, format="json")
    assert response.status_code == 400 and "os_type" in response.json()["errors"]
    empty = client.post("/api/desktop/start", {}, format="json")
    assert empty.status_code == 400 and empty.json()["code"] == "invalid"
    assert not Desktop.objects.exists()


def test_it_fails_the_operation_with_no_capacity_when_nothing_fits(alice, host, template, work):
    template.memory_mib = 1024 * 1024
    template.save()
    alice.tenant.max_running_per_user = 0
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    with work():
        body = _launch(client, template).json()
    operation = client.get(body["operation"]["url"]).json()
    assert operation["status"] == "failed" and operation["error_code"] == "no_capacity"
    desktop = Desktop.objects.get(pk=body["desktop"]["id"])
    assert desktop.state == DesktopState.ERROR and "failed" in desktop.status_reason


def test_it_places_an_unplaced_desktop_when_it_is_started_once_there_is_room(
    alice, host, image, template, work, tmp_path
):
    # Given a desktop whose create failed because no host had room for it
    template.memory_mib = 96 * 1024
    template.save()
    alice.tenant.max_running_per_user = 0
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    with work():
        desktop_id = _launch(client, template).json()["desktop"]["id"]
    assert Desktop.objects.get(pk=desktop_id).state == DesktopState.ERROR
    # When a host with room arrives and the person starts the desktop again
    roomy = make_test_host(tmp_path, name="roomy", memory_gib=256)
    place_image(roomy, image)
    with work():
        response = client.post(f"/api/v1/desktops/{desktop_id}/start/")
    # Then it is placed there, provisioned and running
    assert response.status_code == 202
    operation = client.get(response.json()["operation"]["url"]).json()
    assert operation["status"] == "succeeded", operation.get("error")
    desktop = Desktop.objects.get(pk=desktop_id)
    assert desktop.state == DesktopState.RUNNING and desktop.host_id == roomy.pk


def test_it_hides_other_peoples_desktops_from_members(alice, host, template, work):
    with work():
        desktop_id = _launch(api_client(alice.member, alice.tenant), template).json()["desktop"]["id"]
    other = api_client(alice.admin, alice.tenant)
    assert other.get(f"/api/v1/desktops/{desktop_id}/").status_code == 200  # admins see the tenant's desktops
    from tests.factories import MembershipFactory

    colleague = MembershipFactory(tenant=alice.tenant).user
    response = api_client(colleague, alice.tenant).post(f"/api/v1/desktops/{desktop_id}/stop/")
    assert response.status_code == 404
