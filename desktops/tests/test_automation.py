"""The automation API on libvirt's test driver: screenshots, input batches, screen waits, scoping and refusals.

The test driver answers virDomainScreenshot (a fixed PNG) and virDomainSendKey, but not QEMU monitor commands:
pointer input there is a stable refusal. tests in test_automation_qemu.py prove the effects on a real guest.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image
from rest_framework.test import APIClient

from desktops.models import Desktop
from desktops.tests.factories import DesktopTemplateFactory
from tenants.choices import Role
from tenants.events import AuditAction
from tenants.models import AuditEvent
from tests.factories import MembershipFactory, UserFactory
from tests.fixtures import api_client, login_client


def start_running(alice, template, work):
    """Alice's member's API client and a desktop of the template it started, running."""
    client = api_client(alice.member, alice.tenant)
    with work():
        response = client.post("/api/desktop/start", {"template": template.pk}, format="json")
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    assert desktop.state == "running"
    return client, desktop


@pytest.fixture
def running(alice, host, template, work):
    return start_running(alice, template, work)


def _png(response) -> Image.Image:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_it_answers_a_screenshot_as_png_and_shrinks_it_on_request(running):
    client, desktop = running
    # When the screen is asked for
    full = _png(client.get(f"/api/v1/desktops/{desktop.pk}/screenshot/"))
    width, height = full.size
    # Then it is the host's image at its own size, which the headers state
    response = client.get(f"/api/v1/desktops/{desktop.pk}/screenshot/")
    assert (int(response["X-Screen-Width"]), int(response["X-Screen-Height"])) == (width, height)
    assert len(response["X-Screen-Digest"]) == 32
    # And a bound shrinks it, keeping its aspect, while the headers still give the screen's size
    small = _png(client.get(f"/api/v1/desktops/{desktop.pk}/screenshot/", {"max_width": 64}))
    assert small.size[0] == 64 and abs(small.size[1] - round(height * 64 / width)) <= 1


def test_it_sends_text_and_chords_and_audits_the_batch(running, alice):
    client, desktop = running
    actions = [
        {"type": "text", "text": "echo Hello, World! | cat > /tmp/x\n"},
        {"type": "key", "keys": "ctrl+alt+delete"},
        {"type": "key", "keys": "ctrl+l", "repeat": 2},
        {"type": "wait", "ms": 10},
    ]
    response = client.post(f"/api/v1/desktops/{desktop.pk}/input/", {"actions": actions}, format="json")
    assert response.status_code == 200, response.json()
    # Then every character was one key chord, the chords follow, and one audit event names the batch (not the text)
    assert response.json()["keys"] == len("echo Hello, World! | cat > /tmp/x\n") + 3
    event = AuditEvent.objects.get(action=AuditAction.DESKTOP_INPUT)
    assert event.tenant == alice.tenant and event.target_id == str(desktop.pk)
    assert event.data == {"actions": 4, "kinds": ["key", "text", "wait"]}
    assert "Hello" not in str(event.data)
    desktop.refresh_from_db()
    assert desktop.automation_at is not None and desktop.last_activity_at == desktop.automation_at


@pytest.mark.parametrize(
    ("actions", "code"),
    [
        ([{"type": "text", "text": "café"}], "unsupported_character"),
        ([{"type": "key", "keys": "ctrl+nosuchkey"}], "unknown_key"),
        ([{"type": "key", "keys": "ctrl+"}], "unknown_key"),
        ([{"type": "click", "x": 5000, "y": 1}], "point_off_screen"),
        ([{"type": "click", "x": 1}], "invalid"),
        ([{"type": "wait", "ms": 10_001}], "invalid"),
        ([{"type": "wait", "ms": 10_000}] * 4, "invalid_actions"),
        ([{"type": "text", "text": "a"}] * 101, "invalid"),
        ([], "invalid"),
        ([{"type": "teleport"}], "invalid"),
        ([{"type": "text", "text": "a\x00"}], "invalid"),
    ],
)
def test_it_refuses_bad_batches_before_sending_anything(running, actions, code):
    client, desktop = running
    response = client.post(f"/api/v1/desktops/{desktop.pk}/input/", {"actions": actions}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code or code == "invalid", response.json()
    assert not AuditEvent.objects.filter(action=AuditAction.DESKTOP_INPUT).exists()


def test_it_refuses_pointer_input_where_the_host_cannot_take_it(running):
    client, desktop = running
    response = client.post(
        f"/api/v1/desktops/{desktop.pk}/input/", {"actions": [{"type": "click", "x": 1, "y": 1}]}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "automation_not_supported"


def test_it_waits_for_a_still_screen_and_times_out_on_one_that_never_changes(running):
    client, desktop = running
    still = client.get(f"/api/v1/desktops/{desktop.pk}/screen/changes/", {"until": "still", "still_ms": 200})
    assert still.status_code == 200 and still.json()["still"] is True
    changed = client.get(f"/api/v1/desktops/{desktop.pk}/screen/changes/", {"timeout_ms": 300})
    assert changed.status_code == 200 and changed.json()["changed"] is False
    assert changed.json()["waited_ms"] >= 300
    # A digest the screen no longer has is a change at once
    since = client.get(f"/api/v1/desktops/{desktop.pk}/screen/changes/", {"since": "0" * 32, "timeout_ms": 5000})
    assert since.json()["changed"] is True and since.json()["waited_ms"] < 2000


def test_it_answers_409_for_a_desktop_that_is_not_running(running, work):
    client, desktop = running
    with work():
        assert client.post(f"/api/v1/desktops/{desktop.pk}/stop/").status_code == 202
    for response in (
        client.get(f"/api/v1/desktops/{desktop.pk}/screenshot/"),
        client.post(
            f"/api/v1/desktops/{desktop.pk}/input/", {"actions": [{"type": "text", "text": "x"}]}, format="json"
        ),
        client.get(f"/api/v1/desktops/{desktop.pk}/screen/changes/"),
    ):
        assert response.status_code == 409 and response.json()["code"] == "desktop_not_running"


def test_it_hides_another_tenants_desktop_and_a_colleagues(running, bob, alice):
    _client, desktop = running
    colleague = UserFactory(email="colleague@alice.test")
    MembershipFactory(user=colleague, tenant=alice.tenant, role=Role.MEMBER)
    for client in (api_client(bob.member, bob.tenant), api_client(colleague, alice.tenant)):
        assert client.get(f"/api/v1/desktops/{desktop.pk}/screenshot/").status_code == 404
        body = {"actions": [{"type": "text", "text": "x"}]}
        assert client.post(f"/api/v1/desktops/{desktop.pk}/input/", body, format="json").status_code == 404
    assert not AuditEvent.objects.filter(action=AuditAction.DESKTOP_INPUT).exists()


# --- scoped tokens, the tenant policy, the console banner ---------------------------------------------------


def _token_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _automation_token(client, **body) -> str:
    response = client.post("/api/v1/automation-tokens/", {"name": "agent", **body}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["scope"].startswith("automation_")
    return response.json()["token"]


def _second_desktop(client, template, work) -> Desktop:
    with work():
        response = client.post("/api/v1/desktops/", {"template": template.pk}, format="json")
    assert response.status_code == 202, response.json()
    return Desktop.objects.get(pk=response.json()["desktop"]["id"])


def test_it_limits_a_token_to_its_desktop_and_to_automation(running, template, work):
    client, desktop = running
    other = _second_desktop(client, template, work)
    agent = _token_client(_automation_token(client, access="input", desktops=[desktop.pk]))
    # The token drives its desktop
    assert agent.get(f"/api/v1/desktops/{desktop.pk}/screenshot/").status_code == 200
    typed = agent.post(f"/api/v1/desktops/{desktop.pk}/input/", {"actions": [{"type": "text", "text": "ls\n"}]})
    assert typed.status_code == 200, typed.json()
    # And the batch's audit event names the token that sent it
    event = AuditEvent.objects.get(action=AuditAction.DESKTOP_INPUT)
    assert event.data["token_prefix"] and event.data["token"]
    # But another desktop of the same person does not exist for it
    assert agent.get(f"/api/v1/desktops/{other.pk}/screenshot/").status_code == 404
    body = {"actions": [{"type": "text", "text": "x"}]}
    assert agent.post(f"/api/v1/desktops/{other.pk}/input/", body, format="json").status_code == 404
    # And nothing outside automation answers it
    for response in (agent.get("/api/v1/desktops/"), agent.post(f"/api/v1/desktops/{desktop.pk}/stop/")):
        assert response.status_code == 403 and response.json()["code"] == "token_scope"
    assert agent.post("/api/v1/automation-tokens/", {"name": "more", "access": "input"}).json()["code"] == "token_scope"


def test_it_lets_a_template_token_drive_that_templates_desktops_only(running, template, image, work):
    client, desktop = running
    agent = _token_client(_automation_token(client, access="input", templates=[template.pk]))
    assert agent.get(f"/api/v1/desktops/{desktop.pk}/screenshot/").status_code == 200
    other_template = DesktopTemplateFactory(name="Other", image=image, vcpus=1, memory_mib=512, disk_gib=10)
    other = _second_desktop(client, other_template, work)
    assert agent.get(f"/api/v1/desktops/{other.pk}/screenshot/").status_code == 404


def test_it_keeps_a_read_only_token_to_looking(running):
    client, desktop = running
    viewer = _token_client(_automation_token(client, access="read", desktops=[desktop.pk]))
    assert viewer.get(f"/api/v1/desktops/{desktop.pk}/screenshot/").status_code == 200
    changes = viewer.get(f"/api/v1/desktops/{desktop.pk}/screen/changes/", {"timeout_ms": 0})
    assert changes.status_code == 200
    body = {"actions": [{"type": "key", "keys": "enter"}]}
    refused = viewer.post(f"/api/v1/desktops/{desktop.pk}/input/", body, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "token_read_only"
    assert not AuditEvent.objects.filter(action=AuditAction.DESKTOP_INPUT).exists()


def test_it_refuses_a_token_naming_nothing_or_another_persons_desktop(running, alice):
    client, desktop = running
    empty = client.post("/api/v1/automation-tokens/", {"name": "t", "access": "read"}, format="json")
    assert empty.status_code == 400 and empty.json()["code"] == "token_targets_required"
    colleague = api_client(alice.admin, alice.tenant)
    body = {"name": "t", "access": "read", "desktops": [desktop.pk]}
    assert colleague.post("/api/v1/automation-tokens/", body, format="json").status_code == 404


def test_it_forbids_automation_where_the_tenant_policy_says_so(running, alice):
    client, desktop = running
    raw = _automation_token(client, access="input", desktops=[desktop.pk])
    # When an admin switches automation off for the organisation
    admin = api_client(alice.admin, alice.tenant)
    assert admin.patch("/api/v1/tenant/current/", {"allow_automation": False}, format="json").status_code == 200
    # Then neither the token nor the person's own session may look or type, and no new token is made
    for caller in (_token_client(raw), client):
        response = caller.get(f"/api/v1/desktops/{desktop.pk}/screenshot/")
        assert response.status_code == 403 and response.json()["code"] == "automation_forbidden"
        typed = caller.post(f"/api/v1/desktops/{desktop.pk}/input/", {"actions": [{"type": "text", "text": "x"}]})
        assert typed.status_code == 403 and typed.json()["code"] == "automation_forbidden"
    refused = client.post("/api/v1/automation-tokens/", {"name": "t", "access": "read", "desktops": [desktop.pk]})
    assert refused.status_code == 403 and refused.json()["code"] == "automation_forbidden"


def test_it_shows_the_console_banner_while_automation_drives_the_desktop(running, alice):
    client, desktop = running
    page = login_client(alice.member, alice.tenant)
    banner, hidden = 'data-testid="automation-banner"', 'id="qc-automation" class="qc-banner" role="status" hidden'
    # Given no automation yet: the banner is there for its poller, hidden
    html = page.get(f"/desktops/{desktop.pk}/console/").content.decode()
    assert banner in html and hidden in html
    # When a script sends input, the console opened next shows it at once
    client.post(f"/api/v1/desktops/{desktop.pk}/input/", {"actions": [{"type": "text", "text": "x"}]}, format="json")
    html = page.get(f"/desktops/{desktop.pk}/console/").content.decode()
    assert banner in html and hidden not in html
    assert client.get(f"/api/v1/desktops/{desktop.pk}/").json()["automation_at"] is not None


def test_it_lets_an_admin_drive_a_members_desktop_only_where_admins_may_open_consoles(running, alice):
    _client, desktop = running
    admin = api_client(alice.admin, alice.tenant)
    alice.tenant.allow_admin_console_access = False
    alice.tenant.save()
    refused = admin.get(f"/api/v1/desktops/{desktop.pk}/screenshot/")
    assert refused.status_code == 403 and refused.json()["code"] == "admin_console_disabled"
    typed = admin.post(f"/api/v1/desktops/{desktop.pk}/input/", {"actions": [{"type": "text", "text": "x"}]})
    assert typed.status_code == 403 and typed.json()["code"] == "admin_console_disabled"
    alice.tenant.allow_admin_console_access = True
    alice.tenant.save()
    assert admin.get(f"/api/v1/desktops/{desktop.pk}/screenshot/").status_code == 200


def test_it_types_for_the_keyboard_layout_of_the_desktops_template(running):
    client, desktop = running
    # Given a template whose guests read a German keyboard
    desktop.template.keyboard_layout = "de"
    desktop.template.save(update_fields=["keyboard_layout"])
    # When a script types French and German words
    body = {"actions": [{"type": "text", "text": "café für Zoë"}]}
    response = client.post(f"/api/v1/desktops/{desktop.pk}/input/", body, format="json")
    # Then they are accepted, each accent a dead key and its letter (é, ë) and ü a key of its own
    assert response.status_code == 200, response.json()
    assert response.json()["keys"] == len("café für Zoë") + 2
