"""The automation API on a real libvirtd + QEMU with the demo guest: the screenshot is the guest's screen, and
text typed through the input API runs in its shell (seen on the screen it mirrors to its serial log).

One boot (CPU is scarce here); operations run in-process, the VM is real.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from desktops.choices import DesktopState
from desktops.models import Desktop, DesktopTemplate
from desktops.services import spec
from hosts import demo_image
from tests.fixtures import api_client
from tests.waiting import wait_until

pytestmark = pytest.mark.qemu


def _serial(desktop: Desktop) -> str:
    path = Path(spec.serial_log_path(desktop))
    return path.read_text(errors="replace") if path.exists() else ""


def _screen_lines(desktop: Desktop) -> list[str]:
    screen = demo_image.last_screen(_serial(desktop))
    return list(screen.lines) if screen is not None else []


def test_it_shows_the_guests_screen_and_types_into_its_shell(alice, demo_template, qemu_host, work):
    client = api_client(alice.member, alice.tenant)
    with work():
        response = client.post("/api/desktop/start", {"template": demo_template.pk}, format="json")
    assert response.status_code == 202, response.content
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    try:
        assert desktop.state == DesktopState.RUNNING
        wait_until(lambda: demo_image.READY_BANNER in _serial(desktop), 180, explain=lambda: _serial(desktop)[-1500:])
        # Given the shell's prompt on the guest's screen
        wait_until(lambda: any(demo_image.PROMPT.strip() in line for line in _screen_lines(desktop)), 60)

        # When the screen is asked for
        shot = client.get(f"/api/v1/desktops/{desktop.pk}/screenshot/")
        assert shot.status_code == 200 and shot["Content-Type"] == "image/png"
        image = Image.open(io.BytesIO(shot.content)).convert("RGB")
        # Then it is the VGA text console (80x25 cells of 9x16 pixels), mostly black with lit text on it
        assert image.size == (720, 400)
        colours = image.getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) >= 2
        dark = sum(n for n, rgb in colours if sum(rgb) < 60)
        assert 0.5 * 720 * 400 < dark < 720 * 400, "a text console: dark background, some lit glyphs"
        digest = shot["X-Screen-Digest"]
        # And with nothing typed the screen does not count as changed (its blinking cursor is below the bound)
        idle = client.get(f"/api/v1/desktops/{desktop.pk}/screen/changes/", {"since": digest, "timeout_ms": 1500})
        assert idle.json()["changed"] is False, idle.json()

        # When a command with shifted characters is typed through the input API, with Enter
        actions = [{"type": "text", "text": 'echo "QZ-$((6*7))" | tr Z z\n'}]
        typed = client.post(f"/api/v1/desktops/{desktop.pk}/input/", {"actions": actions}, format="json")
        assert typed.status_code == 200, typed.json()
        # Then the screen changes, and the shell ran it: its output is on the guest's screen
        changed = client.get(
            f"/api/v1/desktops/{desktop.pk}/screen/changes/", {"since": digest, "timeout_ms": 10_000}
        ).json()
        assert changed["changed"] is True
        wait_until(lambda: "Qz-42" in _screen_lines(desktop), 60, explain=lambda: "\n".join(_screen_lines(desktop)))

        # And a key chord reaches it too: ctrl+l clears the screen (the prompt goes back to the top)
        chord = {"actions": [{"type": "key", "keys": "ctrl+l"}]}
        assert client.post(f"/api/v1/desktops/{desktop.pk}/input/", chord, format="json").status_code == 200
        wait_until(lambda: "Qz-42" not in _screen_lines(desktop), 60, explain=lambda: "\n".join(_screen_lines(desktop)))

        # And pointer events reach the guest's tablet through QEMU (a text console has no pointer to show them)
        click = {"actions": [{"type": "click", "x": 100, "y": 100}, {"type": "scroll", "x": 100, "y": 100, "dy": 2}]}
        clicked = client.post(f"/api/v1/desktops/{desktop.pk}/input/", click, format="json")
        assert clicked.status_code == 200, clicked.json()
        # And the screen settles once nothing is typed
        still = client.get(f"/api/v1/desktops/{desktop.pk}/screen/changes/", {"until": "still", "timeout_ms": 10_000})
        assert still.json()["still"] is True, still.json()
    finally:
        from desktops.services.execution import remove_from_host

        remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)


def test_it_deletes_a_disposable_desktop_from_the_host_when_it_expires(alice, demo_template, qemu_host, work):
    from datetime import timedelta

    from django.utils import timezone

    from desktops.tasks import reconcile_all
    from hosts.hypervisor import get_hypervisor

    client = api_client(alice.member, alice.tenant)
    body = {"template": demo_template.pk, "count": 1, "ttl_minutes": 1, "labels": ["expiry"], "wait": "ready"}
    with work():
        response = client.post("/api/v1/disposable-desktops/", body, format="json")
    assert response.status_code == 200, response.content
    desktop = Desktop.objects.get(pk=response.json()["desktops"][0]["id"])
    hv = get_hypervisor(qemu_host.uri)
    try:
        # Given a disposable desktop running on the real host
        # (by domain name: other checkouts' desktops on this shared libvirtd may have the same ids)
        assert desktop.domain_name in {d.name for d in hv.list_domains()}
        disk = spec.disk_volume_name(desktop)
        assert hv.volume_exists(qemu_host.storage_pool, disk)
        # When its minute is up and the beat's reconcile round runs
        Desktop.objects.filter(pk=desktop.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        with work():
            reconcile_all.delay()
        # Then it is deleted, and neither its domain nor its disk is left on the host
        assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.DELETED
        assert desktop.domain_name not in {d.name for d in hv.list_domains()}
        assert not hv.volume_exists(qemu_host.storage_pool, disk)
    finally:
        from desktops.services.execution import remove_from_host

        remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)


def test_it_runs_commands_in_the_guest_through_its_agent(alice, demo_template, qemu_host, work):
    from asgiref.sync import async_to_sync
    from mcp import Client

    from desktops.mcp_server import build_server
    from desktops.services.automation_tokens import create_automation_token
    from hosts.hypervisor import get_hypervisor
    from tenants.events import AuditAction
    from tenants.models import AuditEvent

    DesktopTemplate.objects.filter(pk=demo_template.pk).update(automation_exec_enabled=True)
    client = api_client(alice.member, alice.tenant)
    with work():
        response = client.post("/api/desktop/start", {"template": demo_template.pk}, format="json")
    assert response.status_code == 202, response.content
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    url = f"/api/v1/desktops/{desktop.pk}/exec/"
    try:
        # Given the demo guest up, with its guest agent answering
        hv = get_hypervisor(qemu_host.uri)
        wait_until(lambda: hv.agent_ping(desktop.domain_name), 240, 1, explain=lambda: _serial(desktop)[-1500:])

        # When a shell command writes to both streams and fails
        argv = ["/bin/sh", "-c", "echo hello; echo err >&2; exit 3"]
        ran = client.post(url, {"argv": argv}, format="json")
        # Then its exit code and each stream come back apart
        assert ran.status_code == 200, ran.json()
        body = ran.json()
        assert (body["exit_code"], body["stdout"], body["stderr"]) == (3, "hello\n", "err\n"), body
        assert body["timed_out"] is False and not body["stdout_truncated"] and not body["stderr_truncated"]

        # And standard input reaches it, as text or as base64, and output comes back as base64 when asked
        piped = client.post(url, {"argv": ["/bin/sh", "-c", "cat"], "stdin": "piped\n"}, format="json").json()
        assert (piped["exit_code"], piped["stdout"]) == (0, "piped\n"), piped
        raw = {"argv": ["/bin/sh", "-c", "cat"], "stdin_b64": "AAH/", "encoding": "base64"}
        assert client.post(url, raw, format="json").json()["stdout"] == "AAH/"

        # When a command outlives its timeout
        slow = {"argv": ["/bin/sh", "-c", "echo started; sleep 60; echo never"], "timeout_s": 1}
        late = client.post(url, slow, format="json").json()
        # Then it is killed with what it started, and what it wrote until then comes back
        assert late["timed_out"] is True and late["exit_code"] is None, late
        assert late["stdout"] == "started\n" and late["elapsed_ms"] < 8000, late
        # And the guest keeps no sleeper from it (while ps does see its agent)
        count = "ps | grep -c '[q]emu-ga'; ps | grep -c '[s]leep 60'"
        left = client.post(url, {"argv": ["/bin/sh", "-c", count]}, format="json").json()
        agents, sleepers = left["stdout"].split()
        assert int(agents) >= 1 and sleepers == "0", left

        # And output past the cap is cut, and says so
        big = {"argv": ["/bin/sh", "-c", "head -c 1100000 /dev/zero | tr '\\0' a"]}
        cut = client.post(url, big, format="json").json()
        assert cut["exit_code"] == 0 and cut["stdout_truncated"] is True, {
            k: v for k, v in cut.items() if k != "stdout"
        }
        assert cut["stdout"] == "a" * 1024 * 1024

        # And a program the guest does not have is a stable refusal, not a run
        missing = client.post(url, {"argv": ["/no/such/program"]}, format="json")
        assert missing.status_code == 400 and missing.json()["code"] == "exec_not_started", missing.json()

        # And an AI agent's MCP client runs commands the same way, with an exec token for this desktop
        _token, raw = create_automation_token(
            membership=alice.membership(alice.member), name="agent", access="exec", desktops=[desktop]
        )

        async def mcp_exec():
            async with Client(build_server(raw)) as mcp:
                return await mcp.call_tool("exec", {"desktop_id": desktop.pk, "argv": ["/bin/echo", "via", "mcp"]})

        answer = async_to_sync(mcp_exec)()
        assert not answer.is_error, answer.content
        said = json.loads(answer.content[0].text)
        assert (said["stdout"], said["exit_code"]) == ("via mcp\n", 0), said

        # And every run is audited with its program and argument count, never its output
        audited = AuditEvent.objects.filter(action=AuditAction.DESKTOP_EXEC, target_id=str(desktop.pk)).order_by("pk")
        assert audited.count() == 7 and audited.last().data["token_prefix"] == _token.prefix
        assert audited.first().data == {"program": "/bin/sh", "args": 2, "exit_code": 3, "timed_out": False}
        assert not any("hello" in str(event.data) or "piped" in str(event.data) for event in audited)
    finally:
        from desktops.services.execution import remove_from_host

        remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)
