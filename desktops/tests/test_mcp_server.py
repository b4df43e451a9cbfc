"""The MCP server, driven by the MCP SDK's own client in-process, on libvirt's test driver: a launch -> look ->
type -> stop round trip with an automation token, and the token's limits as tool errors."""

from __future__ import annotations

import base64
import io
import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from mcp import Client
from PIL import Image

from desktops.mcp_server import build_server
from desktops.models import Desktop
from desktops.services.automation_tokens import create_automation_token
from desktops.tests.factories import DesktopTemplateFactory
from tenants.events import AuditAction
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _data(result) -> object:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content.get("result", result.structured_content)
    return json.loads(result.content[0].text)


def test_it_launches_looks_types_and_stops_through_an_mcp_client(alice, host, template, image, work):
    alice.tenant.max_running_per_user = 0
    alice.tenant.save()
    membership = alice.membership(alice.member)
    _token, raw = create_automation_token(membership=membership, name="agent", access="input", templates=[template])
    DesktopTemplateFactory(name="Not for the agent", image=image, vcpus=1, memory_mib=512, disk_gib=10)

    async def scenario() -> dict:
        seen: dict = {}
        async with Client(build_server(raw)) as client:
            seen["tools"] = {tool.name for tool in (await client.list_tools()).tools}
            seen["templates"] = _data(await client.call_tool("list_templates", {}))
            launched = _data(await client.call_tool("launch", {"template_id": template.pk, "ttl_minutes": 5}))
            seen["launched"] = launched
            look = await client.call_tool("look", {"desktop_id": launched["id"], "max_width": 100})
            seen["look"] = look.content[0]
            seen["typed"] = _data(await client.call_tool("type", {"desktop_id": launched["id"], "text": "ls -l\n"}))
            seen["key"] = _data(await client.call_tool("key", {"desktop_id": launched["id"], "keys": "ctrl+c"}))
            bad = await client.call_tool("key", {"desktop_id": launched["id"], "keys": "nosuchkey"})
            seen["bad"] = (bad.is_error, bad.content[0].text)
            other = await client.call_tool("look", {"desktop_id": launched["id"] + 1000})
            seen["other"] = (other.is_error, other.content[0].text)
            seen["stop"] = _data(await client.call_tool("stop", {"desktop_id": launched["id"]}))
        return seen

    seen = async_to_sync(scenario)()
    assert {"list_templates", "launch", "look", "click", "type", "key", "scroll", "wait", "stop"} <= seen["tools"]
    # The token sees only its template, and the launch is a running disposable desktop of it
    assert [t["id"] for t in seen["templates"]] == [template.pk]
    assert seen["launched"]["state"] == "running"
    desktop = Desktop.objects.get(pk=seen["launched"]["id"])
    assert desktop.template == template and desktop.expires_at is not None
    # The look is a PNG image shrunk to the asked width
    assert seen["look"].type == "image" and seen["look"].mime_type == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(seen["look"].data))).size[0] == 100
    # Typing and keys went through the audited input path, refusals carry their codes
    assert seen["typed"]["keys"] == len("ls -l\n") and seen["key"]["keys"] == 1
    assert AuditEvent.objects.filter(action=AuditAction.DESKTOP_INPUT, target_id=str(desktop.pk)).count() == 2
    assert seen["bad"][0] and "unknown_key: " in seen["bad"][1]
    assert seen["other"][0] and "not_found: " in seen["other"][1]
    # And stop deleted the disposable desktop
    assert Desktop.objects.get(pk=desktop.pk).state == "deleted"


def test_it_refuses_a_revoked_token(alice, host, template):
    from tenants.services.tokens import revoke_token

    token, raw = create_automation_token(
        membership=alice.membership(alice.member), name="agent", access="read", templates=[template]
    )
    revoke_token(token=token, actor=alice.member)

    async def scenario():
        async with Client(build_server(raw)) as client:
            return await client.call_tool("list_templates", {})

    result = async_to_sync(scenario)()
    assert result.is_error and "invalid_token: " in result.content[0].text


def test_it_runs_commands_only_with_an_exec_token_where_the_template_allows(alice, host, template, work):
    alice.tenant.max_running_per_user = 0
    alice.tenant.save()
    membership = alice.membership(alice.member)
    _typist, typist_raw = create_automation_token(membership=membership, name="t", access="input", templates=[template])
    _runner, runner_raw = create_automation_token(membership=membership, name="r", access="exec", templates=[template])
    hello = ["/bin/sh", "-c", "echo hello"]

    async def scenario() -> dict:
        seen: dict = {}
        async with Client(build_server(runner_raw)) as client:
            seen["tools"] = {tool.name for tool in (await client.list_tools()).tools}
            launched = _data(await client.call_tool("launch", {"template_id": template.pk, "ttl_minutes": 5}))
            seen["id"] = launched["id"]

            async def run(name: str, **args) -> None:
                result = await client.call_tool("exec", {"desktop_id": launched["id"], **args})
                seen[name] = (result.is_error, result.content[0].text)

            await run("disabled", argv=hello)
            await sync_to_async(_enable_exec)(template)
            await run("bad", argv=[])
            await run("long", argv=hello, timeout_s=121)
            await run("no_agent", argv=hello)
        async with Client(build_server(typist_raw)) as client:
            result = await client.call_tool("exec", {"desktop_id": seen["id"], "argv": hello})
            seen["typist"] = (result.is_error, result.content[0].text)
        return seen

    seen = async_to_sync(scenario)()
    assert "exec" in seen["tools"]
    # The template's switch, the bounds and the guest agent answer as they do in the API, with their codes
    assert seen["disabled"][0] and _says(seen["disabled"][1], "exec_not_enabled: "), seen["disabled"]
    assert seen["bad"][0] and _says(seen["bad"][1], "invalid_exec: "), seen["bad"]
    assert seen["long"][0] and _says(seen["long"][1], "invalid_exec: "), seen["long"]
    assert seen["no_agent"][0] and _says(seen["no_agent"][1], "guest_agent_unavailable: "), seen["no_agent"]
    # And an input token may not run commands at all
    assert seen["typist"][0] and _says(seen["typist"][1], "token_no_exec: "), seen["typist"]
    assert not AuditEvent.objects.filter(action=AuditAction.DESKTOP_EXEC).exists()


def _enable_exec(template) -> None:
    type(template).objects.filter(pk=template.pk).update(automation_exec_enabled=True)


def _says(text: str, prefix: str) -> bool:
    return f" {prefix}" in f" {text}"


def test_it_refuses_every_tool_where_the_tenant_forbids_automation(alice, host, template):
    _token, raw = create_automation_token(
        membership=alice.membership(alice.member), name="agent", access="input", templates=[template]
    )
    alice.tenant.allow_automation = False
    alice.tenant.save(update_fields=["allow_automation"])

    async def scenario() -> list:
        async with Client(build_server(raw)) as client:
            return [
                await client.call_tool("list_templates", {}),
                await client.call_tool("list_desktops", {}),
                await client.call_tool("launch", {"template_id": template.pk}),
            ]

    # Listing is automation too: the policy refuses it as the HTTP transport's door does
    for result in async_to_sync(scenario)():
        assert result.is_error and _says(result.content[0].text, "automation_forbidden: "), result.content
    assert not Desktop.objects.exists()


def test_it_changes_nothing_in_a_suspended_tenant(alice, host, template, work):
    from desktops.tests.test_automation import start_running
    from tenants.choices import TenantStatus
    from tenants.services.tenants import set_status

    _client, desktop = start_running(alice, template, work)
    _token, raw = create_automation_token(
        membership=alice.membership(alice.member), name="agent", access="input", templates=[template]
    )
    set_status(tenant=alice.tenant, status=TenantStatus.SUSPENDED, reason="test")

    async def scenario() -> dict:
        async with Client(build_server(raw)) as client:
            return {
                "listed": await client.call_tool("list_desktops", {}),
                "type": await client.call_tool("type", {"desktop_id": desktop.pk, "text": "x"}),
                "key": await client.call_tool("key", {"desktop_id": desktop.pk, "keys": "enter"}),
                "stop": await client.call_tool("stop", {"desktop_id": desktop.pk}),
            }

    seen = async_to_sync(scenario)()
    # Looking stays open, as the API's GETs do; input and stopping are refused as the API refuses its POSTs there
    assert [d["id"] for d in _data(seen["listed"])] == [desktop.pk]
    for name in ("type", "key", "stop"):
        assert seen[name].is_error and _says(seen[name].content[0].text, "tenant_suspended: "), seen[name].content
    assert not AuditEvent.objects.filter(action=AuditAction.DESKTOP_INPUT).exists()
