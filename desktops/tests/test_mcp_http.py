"""The MCP server over streamable HTTP at /mcp/, driven by the MCP SDK's own streamable HTTP client against a live
uvicorn serving quetzal.asgi on PostgreSQL: the token at the door, its scope and the tenant's policy per tool,
Host/Origin checks against DNS rebinding, the body bound, and the audit of what it drives.

The server runs in a thread of the test process: libvirt's test driver keeps a desktop's domain only in the process
that started it, and the desktop these tools look at and type into runs here. One test runs the production server
command in a process of its own, for the route as `make run` composes it.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator

import httpx2
import pytest
import uvicorn
from asgiref.sync import async_to_sync
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from PIL import Image

from desktops.mcp_http import MAX_BODY_BYTES
from desktops.services import automation_exec
from desktops.services.automation_tokens import create_automation_token
from desktops.tests.factories import DesktopTemplateFactory
from desktops.tests.test_automation import start_running
from quetzal.server import free_port
from tenants.events import AuditAction
from tenants.models import AuditEvent
from tenants.services.tokens import create_token, revoke_token
from tests.processes import child_env, require_shared_services, start_asgi_server
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server_url() -> Iterator[str]:
    """quetzal.asgi under uvicorn, as `make run` serves it, on a free loopback port; its MCP endpoint's URL."""
    require_shared_services("the MCP server")
    from quetzal.asgi import application

    port = free_port()
    server = uvicorn.Server(
        # As quetzal.server's command line serves it: the client address is the TCP peer's, never a header's
        uvicorn.Config(
            application, host="127.0.0.1", port=port, lifespan="off", proxy_headers=False, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 30)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/mcp/"
    server.should_exit = True
    thread.join(10)


def _client(url: str, raw: str | None, **headers: str) -> Client:
    if raw is not None:
        headers["Authorization"] = f"Bearer {raw}"
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120))
    return Client(streamable_http_client(url, http_client=http))


def _data(result) -> object:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content.get("result", result.structured_content)
    return json.loads(result.content[0].text)


def _refusal(result) -> str:
    assert result.is_error, result.content
    return result.content[0].text


async def _connect(url: str, raw: str | None, **headers: str) -> None:
    async with _client(url, raw, **headers) as client:
        await client.list_tools()


def _refused_connection(connect, *args, **kwargs) -> MCPError:
    """The MCPError the SDK's client raised in connect(*args, **kwargs), out of the task groups it comes wrapped in."""
    with pytest.raises(BaseException) as raised:
        async_to_sync(connect)(*args, **kwargs)
    error: BaseException = raised.value
    while isinstance(error, BaseExceptionGroup):
        [error] = error.exceptions
    assert isinstance(error, MCPError), repr(error)
    return error


def _post(url: str, headers: dict[str, str], body: bytes | None = None) -> httpx2.Response:
    """One raw JSON-RPC POST, for what happens before any MCP client gets an answer (status codes, headers)."""
    payload = body if body is not None else json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    return httpx2.post(url, content=payload, headers={**base, **headers}, timeout=30)


def _error(response: httpx2.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    return body["error"]


def test_it_lists_tools_and_drives_a_desktop_round_trip_over_http(server_url, alice, host, template, work):
    _member, desktop = start_running(alice, template, work)
    membership = alice.membership(alice.member)
    token, raw = create_automation_token(membership=membership, name="agent", access="input", desktops=[desktop])

    async def scenario() -> dict:
        seen: dict = {}
        async with _client(server_url, raw) as client:
            seen["tools"] = {tool.name for tool in (await client.list_tools()).tools}
            seen["desktops"] = _data(await client.call_tool("list_desktops", {}))
            look = await client.call_tool("look", {"desktop_id": desktop.pk, "max_width": 80})
            seen["look"] = look.content[0]
            seen["typed"] = _data(await client.call_tool("type", {"desktop_id": desktop.pk, "text": "ls\n"}))
            seen["bad"] = _refusal(await client.call_tool("key", {"desktop_id": desktop.pk, "keys": "nosuchkey"}))
        return seen

    seen = async_to_sync(scenario)()
    assert {"list_templates", "list_desktops", "launch", "look", "type", "key", "stop"} <= seen["tools"]
    # The token sees its one desktop, and the look is that desktop's screen as a PNG at the asked width
    assert [d["id"] for d in seen["desktops"]] == [desktop.pk]
    assert seen["look"].type == "image" and seen["look"].mime_type == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(seen["look"].data))).size[0] == 80
    # The typing went through the audited input path, with the HTTP caller's address and the token
    assert seen["typed"]["keys"] == len("ls\n")
    [typed] = AuditEvent.objects.filter(action=AuditAction.DESKTOP_INPUT, target_id=str(desktop.pk))
    assert typed.ip_address == "127.0.0.1" and typed.actor == alice.member and typed.data["token"] == token.pk
    # A refusal is a tool error with its stable code, as over stdio
    assert "unknown_key: " in seen["bad"]


def test_it_refuses_a_missing_or_invalid_token_with_401(server_url, alice, template):
    token, revoked = create_automation_token(
        membership=alice.membership(alice.member), name="old", access="read", templates=[template]
    )
    revoke_token(token=token, actor=alice.member)

    # Raw HTTP: the status, the Bearer challenge and a JSON-RPC error with a stable code
    for headers, code in (
        ({}, "token_required"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "token_required"),
        ({"Authorization": "Bearer qz_nosuchtoken"}, "invalid_token"),
        ({"Authorization": f"Bearer {revoked}"}, "invalid_token"),
        ({"Authorization": "Bearer two words"}, "invalid_token"),
    ):
        response = _post(server_url, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert _error(response)["data"]["code"] == code

    # In the caller's language
    german = _error(_post(server_url, {"Accept-Language": "de"}))
    assert german["message"] == "Senden Sie ein API-Token: Authorization: Bearer qz_…"

    # And the SDK's own client gets the message, not a bare failure
    refused = _refused_connection(_connect, server_url, revoked)
    assert "Invalid, expired or revoked token" in refused.error.message
    assert _refused_connection(_connect, server_url, None).error.data == {"code": "token_required"}


def test_it_answers_another_desktop_as_not_found_for_a_token_scoped_to_one(
    server_url, alice, bob, host, template, work
):
    _client_a, mine = start_running(alice, template, work)
    second = DesktopTemplateFactory(name="Second", image=template.image, vcpus=1, memory_mib=512, disk_gib=10)
    _client_b, other = start_running(alice, second, work)
    assert other.pk != mine.pk and other.user == mine.user
    _token, raw = create_automation_token(
        membership=alice.membership(alice.member), name="one", access="input", desktops=[mine]
    )
    bobs_token, bobs_raw = create_token(membership=bob.membership(bob.owner), name="bob's")

    async def scenario() -> dict:
        seen: dict = {}
        async with _client(server_url, raw) as client:
            seen["listed"] = [d["id"] for d in _data(await client.call_tool("list_desktops", {}))]
            seen["look"] = _refusal(await client.call_tool("look", {"desktop_id": other.pk}))
            seen["type"] = _refusal(await client.call_tool("type", {"desktop_id": other.pk, "text": "x"}))
            seen["stop"] = _refusal(await client.call_tool("stop", {"desktop_id": other.pk}))
        async with _client(server_url, bobs_raw) as client:
            seen["bob"] = _refusal(await client.call_tool("look", {"desktop_id": mine.pk}))
        return seen

    seen = async_to_sync(scenario)()
    # The other desktop, of the same person, is not there for this token; nor is alice's desktop for bob's owner
    assert seen["listed"] == [mine.pk]
    for name in ("look", "type", "stop", "bob"):
        assert "not_found: No such desktop." in seen[name], (name, seen[name])
    assert not AuditEvent.objects.filter(action=AuditAction.DESKTOP_INPUT).exists()
    other.refresh_from_db()
    assert other.state == "running"


def test_it_refuses_every_tool_where_the_tenant_forbids_automation(server_url, alice, host, template, work):
    _member, desktop = start_running(alice, template, work)
    _token, raw = create_automation_token(
        membership=alice.membership(alice.member), name="agent", access="input", desktops=[desktop]
    )
    _full, full_raw = create_token(membership=alice.membership(alice.owner), name="owner's")

    async def before_and_during() -> None:
        async with _client(server_url, raw) as client:
            assert (await client.list_tools()).tools
            alice.tenant.allow_automation = False
            await alice.tenant.asave(update_fields=["allow_automation"])
            # A client connected before the switch: its very next request meets the policy at the door
            await client.call_tool("type", {"desktop_id": desktop.pk, "text": "x"})

    refused = _refused_connection(before_and_during)
    assert refused.error.message == "Your organisation does not allow automation of desktops."
    assert refused.error.data == {"code": "automation_forbidden"}

    # A new connection is refused at the door with 403 and the policy's message, whatever the token's scope
    for secret in (raw, full_raw):
        response = _post(server_url, {"Authorization": f"Bearer {secret}"})
        assert response.status_code == 403 and _error(response)["data"]["code"] == "automation_forbidden"
    assert not AuditEvent.objects.filter(action=AuditAction.DESKTOP_INPUT).exists()


def test_it_refuses_a_foreign_origin_and_host_as_the_spec_asks(server_url, alice, template):
    _token, raw = create_automation_token(
        membership=alice.membership(alice.member), name="agent", access="read", templates=[template]
    )
    bearer = {"Authorization": f"Bearer {raw}"}
    port = server_url.split(":")[2].split("/")[0]

    # A page of another site (or a rebound DNS name) is refused before the token is even looked at
    refused = _post(server_url, {**bearer, "Origin": "https://evil.example"})
    assert refused.status_code == 403 and _error(refused)["data"]["code"] == "invalid_origin"
    rebound = _post(server_url, {**bearer, "Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"})
    assert rebound.status_code == 421 and _error(rebound)["data"]["code"] == "invalid_host"
    # The site's own origin, and a client that sends none, are served
    same = _post(server_url, {**bearer, "Origin": f"http://127.0.0.1:{port}"})
    assert same.status_code == 200, same.text

    refused = _refused_connection(_connect, server_url, raw, Origin="https://evil.example")
    assert refused.error.data == {"code": "invalid_origin"}


def test_it_bounds_the_request_body(server_url, alice, template):
    _token, raw = create_automation_token(
        membership=alice.membership(alice.member), name="agent", access="input", templates=[template]
    )
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    huge = json.dumps({**call, "params": {"name": "type", "arguments": {"text": "x" * MAX_BODY_BYTES}}}).encode()
    response = _post(server_url, {"Authorization": f"Bearer {raw}"}, body=huge)
    assert response.status_code == 413 and _error(response)["data"]["code"] == "request_too_large"
    # While the largest call a tool takes (a command's whole stdin, every byte escaped) passes the door to the tool
    stdin = "\x01" * automation_exec.MAX_STDIN_BYTES
    largest = {"name": "exec", "arguments": {"desktop_id": 0, "argv": ["/bin/cat"], "stdin": stdin}}
    body = json.dumps({**call, "params": largest}).encode()
    assert len(body) > 6 * automation_exec.MAX_STDIN_BYTES
    served = _post(server_url, {"Authorization": f"Bearer {raw}"}, body=body)
    assert served.status_code == 200 and "not_found: No such desktop." in served.text, served.text[:300]
    # Not JSON at all is the SDK's parse error, not a crash
    garbage = _post(server_url, {"Authorization": f"Bearer {raw}"}, body=b"{not json")
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == -32700


def test_it_answers_other_methods_and_malformed_requests_without_a_server_error(server_url, alice, template):
    _token, raw = create_automation_token(
        membership=alice.membership(alice.member), name="agent", access="read", templates=[template]
    )
    bearer = {"Authorization": f"Bearer {raw}", "Accept": "application/json, text/event-stream"}
    # No standing GET stream nor session to DELETE in stateless serving: the spec's 405 for both
    for method in ("GET", "DELETE", "PUT"):
        response = httpx2.request(method, server_url, headers=bearer, timeout=30)
        assert response.status_code == 405 and response.headers["allow"] == "POST", (method, response.text)
        assert _error(response)["data"]["code"] == "method_not_allowed"
    # A body that is not JSON is the SDK's refusal, and the path without its slash is served, not redirected
    assert _post(server_url, {**bearer, "Content-Type": "text/plain"}).status_code == 400
    unslashed = _post(server_url.rstrip("/"), bearer)
    assert unslashed.status_code == 200 and "tools" in unslashed.text, unslashed.text


def test_it_serves_the_tools_under_the_production_server_command(alice, template, tmp_path):
    require_shared_services("the web server")
    _token, raw = create_automation_token(
        membership=alice.membership(alice.member), name="agent", access="read", templates=[template]
    )
    server, base = start_asgi_server(env=child_env(), log_path=tmp_path / "server.log")

    async def scenario() -> tuple[set, object]:
        async with _client(f"{base}/mcp/", raw) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            return tools, _data(await client.call_tool("list_templates", {}))

    try:
        tools, templates = async_to_sync(scenario)()
        refused = _post(f"{base}/mcp/", {})
    finally:
        server.stop()
    assert {"look", "type", "launch"} <= tools, server.log_tail()
    assert templates == [{"id": template.pk, "name": template.name, "os": template.os_family}]
    assert refused.status_code == 401 and _error(refused)["data"]["code"] == "token_required"
