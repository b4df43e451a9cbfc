"""Commands through the guest agent (POST /api/v1/desktops/{id}/exec/) on libvirt's test driver: the bounds, who
may, and the refusals. The test driver has no guest agent, so a permitted command ends in the 503 a desktop
without one gets; test_automation_qemu.py runs commands in a real guest.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from desktops.models import Desktop, DesktopTemplate
from desktops.services import automation_exec
from desktops.tests.factories import DesktopTemplateFactory
from desktops.tests.test_automation import start_running
from tenants.choices import Role
from tenants.events import AuditAction
from tenants.models import AuditEvent
from tests.factories import MembershipFactory, UserFactory
from tests.fixtures import api_client, login_client

HELLO = {"argv": ["/bin/sh", "-c", "echo hello"]}


def _url(desktop: Desktop) -> str:
    return f"/api/v1/desktops/{desktop.pk}/exec/"


@pytest.fixture
def running(alice, host, template, work):
    DesktopTemplate.objects.filter(pk=template.pk).update(automation_exec_enabled=True)
    return start_running(alice, template, work)


def _token(client, desktop: Desktop, access: str) -> APIClient:
    body = {"name": "agent", "access": access, "desktops": [desktop.pk]}
    response = client.post("/api/v1/automation-tokens/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["scope"] == f"automation_{access}"
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    return agent


def _refused(response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response.json()["code"] == code, response.json()
    assert response.json()["detail"]


def _no_exec_audited() -> None:
    assert not AuditEvent.objects.filter(action=AuditAction.DESKTOP_EXEC).exists()


def test_it_answers_503_where_no_guest_agent_answers(running):
    client, desktop = running
    # Given a running desktop whose template allows commands, on a host without a guest agent (the test driver)
    # When a command is sent
    response = client.post(_url(desktop), HELLO, format="json")
    # Then the answer says no agent answers, and nothing is audited as run
    _refused(response, 503, "guest_agent_unavailable")
    assert "guest agent" in response.json()["detail"]
    _no_exec_audited()


def test_it_refuses_a_template_that_does_not_allow_commands(running, template):
    client, desktop = running
    DesktopTemplate.objects.filter(pk=template.pk).update(automation_exec_enabled=False)
    response = client.post(_url(desktop), HELLO, format="json")
    _refused(response, 403, "exec_not_enabled")
    assert template.name in response.json()["detail"]
    _no_exec_audited()


def test_it_answers_409_for_a_desktop_that_is_not_running(running, work):
    client, desktop = running
    with work():
        assert client.post(f"/api/v1/desktops/{desktop.pk}/stop/").status_code == 202
    _refused(client.post(_url(desktop), HELLO, format="json"), 409, "desktop_not_running")


def test_it_forbids_commands_where_the_tenant_forbids_automation(running, alice):
    client, desktop = running
    agent = _token(client, desktop, "exec")
    alice.tenant.allow_automation = False
    alice.tenant.save()
    for caller in (client, agent):
        _refused(caller.post(_url(desktop), HELLO, format="json"), 403, "automation_forbidden")
    _no_exec_audited()


def test_it_lets_only_an_exec_token_run_commands_and_only_on_its_desktop(running, template, work):
    client, desktop = running
    with work():
        other_id = client.post("/api/v1/desktops/", {"template": template.pk}, format="json").json()["desktop"]["id"]
    viewer, typist, runner = (_token(client, desktop, access) for access in ("read", "input", "exec"))
    # A read or input token may not run commands
    _refused(viewer.post(_url(desktop), HELLO, format="json"), 403, "token_read_only")
    _refused(typist.post(_url(desktop), HELLO, format="json"), 403, "token_no_exec")
    # An exec token gets as far as the guest agent (none answers on the test driver)
    _refused(runner.post(_url(desktop), HELLO, format="json"), 503, "guest_agent_unavailable")
    # But another desktop of the same person does not exist for it, and nothing outside automation answers it
    _refused(runner.post(f"/api/v1/desktops/{other_id}/exec/", HELLO, format="json"), 404, "not_found")
    _refused(runner.get("/api/v1/desktops/"), 403, "token_scope")
    # And it still looks and types like an input token
    assert runner.get(f"/api/v1/desktops/{desktop.pk}/screenshot/").status_code == 200
    typed = runner.post(f"/api/v1/desktops/{desktop.pk}/input/", {"actions": [{"type": "key", "keys": "enter"}]})
    assert typed.status_code == 200, typed.json()
    _no_exec_audited()


def test_it_hides_a_colleagues_desktop_and_another_tenants(running, alice, bob):
    _client, desktop = running
    colleague = UserFactory(email="colleague@alice.test")
    MembershipFactory(user=colleague, tenant=alice.tenant, role=Role.MEMBER)
    for client in (api_client(bob.admin, bob.tenant), api_client(colleague, alice.tenant)):
        _refused(client.post(_url(desktop), HELLO, format="json"), 404, "not_found")


def test_it_refuses_an_admin_where_admins_may_not_open_members_desktops(running, alice):
    _client, desktop = running
    alice.tenant.allow_admin_console_access = False
    alice.tenant.save()
    admin = api_client(alice.admin, alice.tenant)
    _refused(admin.post(_url(desktop), HELLO, format="json"), 403, "admin_console_disabled")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"argv": []},
        {"argv": "/bin/ls"},
        {"argv": [1, 2]},
        {"argv": [""]},
        {"argv": ["   "]},
        {"argv": ["/bin/echo"] * 65},
        {"argv": ["/bin/echo", "x" * 4097]},
        {"argv": ["/bin/echo"] + ["x" * 4000] * 5},
        {"argv": ["/bin/echo", "a\x00b"]},
        {"argv": ["/bin/cat"], "stdin": "x" * (32 * 1024 + 1)},
        {"argv": ["/bin/cat"], "stdin": "é" * 17_000},
        {"argv": ["/bin/cat"], "stdin": "a", "stdin_b64": "YQ=="},
        {"argv": ["/bin/cat"], "stdin_b64": "not base64!"},
        {"argv": ["/bin/cat"], "stdin_b64": "YQ"},
        {"argv": ["/bin/true"], "timeout_s": 0},
        {"argv": ["/bin/true"], "timeout_s": 121},
        {"argv": ["/bin/true"], "timeout_s": "30"},
        {"argv": ["/bin/true"], "timeout_s": 1.5},
        {"argv": ["/bin/true"], "encoding": "latin-1"},
    ],
)
def test_it_refuses_bad_commands_with_400_before_reaching_the_guest(running, body):
    client, desktop = running
    response = client.post(_url(desktop), body, format="json")
    assert response.status_code == 400, (body, response.status_code, response.content[:300])
    assert response.json()["code"] in ("invalid", "invalid_exec") and response.json()["errors"], response.json()
    _no_exec_audited()


def test_it_bounds_commands_in_the_service_too(running, alice):
    # The MCP server calls the service directly: it checks what the API's serializer checks
    _client, desktop = running
    for argv, stdin, timeout in (
        ([], b"", 30),
        (["x"] * 65, b"", 30),
        ("/bin/ls", b"", 30),
        (["/bin/cat"], b"x" * (automation_exec.MAX_STDIN_BYTES + 1), 30),
        (["/bin/true"], b"", 0),
        (["/bin/true"], b"", True),
    ):
        with pytest.raises(automation_exec.FieldErrors) as refused:
            automation_exec.run(desktop=desktop, argv=argv, stdin=stdin, timeout_s=timeout, actor=alice.member)
        assert refused.value.code == "invalid_exec" and refused.value.status == 400


def test_it_sets_the_template_switch_from_the_admin_console(alice, image, host):
    from hosts.choices import CopyState
    from hosts.models import ImageCopy

    ImageCopy.objects.filter(image=image).update(state=CopyState.READY)
    own = DesktopTemplateFactory(name="Runner", image=image, tenant=alice.tenant, visibility="tenant")
    page = login_client(alice.admin, alice.tenant)
    assert 'name="automation_exec_enabled"' in page.get(f"/manage/templates/{own.pk}/").content.decode()
    form = {
        "name": "Runner",
        "os_family": "linux",
        "image": image.pk,
        "vcpus": own.vcpus,
        "memory_mib": own.memory_mib,
        "disk_gib": own.disk_gib,
        "gpu_kind": "none",
        "cloud_init_user": "quetzal",
        "enabled": "on",
        "automation_exec_enabled": "on",
    }
    response = page.post(f"/manage/templates/{own.pk}/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    own.refresh_from_db()
    assert own.automation_exec_enabled is True
    assert AuditEvent.objects.get(action="template.update").data["changed"] == ["automation_exec_enabled"]


def test_it_shows_the_switch_to_operators_and_in_the_template_api(alice, template):
    import uuid

    from tenants.models import User

    operator = User.objects.create_superuser(email=f"op-{uuid.uuid4().hex[:6]}@example.test", password="x" * 12)
    page = login_client(operator).get(f"/admin/desktops/desktoptemplate/{template.pk}/change/")
    assert page.status_code == 200 and 'name="automation_exec_enabled"' in page.content.decode()
    # And a script can tell from the template whether its desktops take commands
    api = api_client(alice.member, alice.tenant)
    assert api.get(f"/api/v1/templates/{template.pk}/").json()["automation_exec_enabled"] is False
    DesktopTemplate.objects.filter(pk=template.pk).update(automation_exec_enabled=True)
    assert api.get(f"/api/v1/templates/{template.pk}/").json()["automation_exec_enabled"] is True
