"""An MCP server (the `mcp` package) exposing the automation API as tools for AI agents.

It acts with one API token, as the API would: the token's tenant, its person's rights, and (for an automation
token) only the desktops and templates it names; every call goes through the same services as the API, so the
same scoping, policies, bounds and audit events apply. `manage.py mcp_server` serves it on stdio;
desktops.mcp_http serves it over streamable HTTP at /mcp/, one server per request for the request's token.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import close_old_connections, connections
from django.utils.translation import gettext
from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from desktops.models import Desktop, DesktopTemplate
from desktops.services import automation, automation_exec, disposable
from desktops.services.automation_tokens import (
    require_access,
    require_automation_allowed,
    scope_desktops,
    token_templates,
)
from desktops.services.requests import request_stop
from desktops.services.templates import launchable
from quetzal.errors import NotFound, ServiceError
from tenants import readonly
from tenants.models import ApiToken, Membership
from tenants.models.token import TokenScope
from tenants.services.tokens import authenticate_token

T = TypeVar("T")


class TokenRefused(Exception):
    """The token is unknown, expired, revoked, or its person left the tenant."""


def _guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """Service refusals become tool errors with their stable code (the agent reads them).

    Tools run in the SDK's worker threads: each call closes its thread's database connections, which would
    otherwise outlive the call in a thread Django does not manage.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        except ServiceError as error:
            raise ToolError(f"{error.code}: {error.detail}") from None
        finally:
            connections.close_all()

    return wrapper


class Caller:
    """Who the server acts as: the token, its person and their membership, re-read on every call.

    Every tool is automation, so the tenant's policy against it refuses them all, listing included (as the
    HTTP transport refuses such a token at its door); `ip` is the HTTP caller's address, for the audit log.
    """

    def __init__(self, raw_token: str, ip: str | None = None) -> None:
        self.raw_token = raw_token
        self.ip = ip

    def token(self) -> ApiToken:
        token = authenticate_token(self.raw_token, ip=self.ip)
        if token is None:
            raise ServiceError(gettext("Invalid, expired or revoked token."), code="invalid_token", status=401)
        require_automation_allowed(token.tenant)
        return token

    def writable(self, token: ApiToken) -> None:
        """Refuse a change in a suspended or pending tenant, as the API refuses its POSTs there."""
        readonly.ensure_writable(token.tenant)

    def membership(self, token: ApiToken) -> Membership:
        membership = Membership.objects.select_related("tenant").filter(user=token.user, tenant=token.tenant).first()
        if membership is None:
            raise ServiceError(gettext("The token's person is no longer a member."), code="no_tenant", status=403)
        return membership

    def desktops(self, token: ApiToken, membership: Membership):
        desktops = Desktop.objects.for_tenant(token.tenant).alive().select_related("host", "template")
        if not membership.is_admin:
            desktops = desktops.owned_by(token.user)
        return scope_desktops(desktops, token)

    def desktop(self, desktop_id: int) -> tuple[Desktop, ApiToken]:
        token = self.token()
        desktop = self.desktops(token, self.membership(token)).filter(pk=desktop_id).first()
        if desktop is None:
            raise NotFound(gettext("No such desktop."))
        return desktop, token


def _input(caller: Caller, desktop_id: int, actions: list[dict]) -> dict:
    desktop, token = caller.desktop(desktop_id)
    caller.writable(token)
    return automation.send_input(desktop=desktop, actions=actions, actor=token.user, token=token, ip=caller.ip)


def build_server(raw_token: str, *, ip: str | None = None) -> MCPServer:
    """The server with its tools, acting as the token's holder (calling from `ip`, over HTTP)."""
    caller = Caller(raw_token, ip)
    server = MCPServer(
        name="quetzal",
        instructions=(
            "Cloud desktops you can see and drive: launch one from a template, look at its screen, click, type, "
            "press keys, scroll, wait for the screen to change, run commands where the template allows, and stop "
            "it. Coordinates are screen pixels of the last look."
        ),
    )

    @server.tool()
    @_guarded
    def list_templates() -> list[dict]:
        """Templates you may launch desktops from."""
        token = caller.token()
        templates = launchable(DesktopTemplate.objects.all(), token.tenant)
        if token.is_automation_only:
            templates = templates.filter(pk__in=token_templates(token).values("template_id"))
        return [{"id": t.pk, "name": t.name, "os": t.os_family} for t in templates.order_by("name")]

    @server.tool()
    @_guarded
    def list_desktops() -> list[dict]:
        """Desktops you may drive, with their state."""
        token = caller.token()
        return [
            {"id": d.pk, "name": d.name, "state": d.state, "template": d.template.name}
            for d in caller.desktops(token, caller.membership(token))
        ]

    @server.tool()
    @_guarded
    def launch(template_id: int, ttl_minutes: int = 60, label: str = "mcp") -> dict:
        """Start a disposable desktop from a template and wait until it runs; it is deleted after ttl_minutes."""
        token = caller.token()
        membership = caller.membership(token)
        caller.writable(token)
        templates = launchable(DesktopTemplate.objects.all(), token.tenant)
        if token.is_automation_only:
            require_access(tenant=token.tenant, token=token, write=True)
            templates = templates.filter(pk__in=token_templates(token).values("template_id"))
        template = templates.filter(pk=template_id).first()
        if template is None:
            raise NotFound(gettext("No such template for this token."), code="template_unavailable")
        [(desktop, _operation)] = disposable.create(
            tenant=membership.tenant,
            user=token.user,
            template=template,
            count=1,
            ttl_minutes=ttl_minutes,
            labels=[label],
            actor=token.user,
            ip=caller.ip,
        )
        [desktop] = disposable.wait_ready([desktop], timeout_s=300)
        return {"id": desktop.pk, "name": desktop.name, "state": desktop.state}

    @server.tool()
    @_guarded
    def look(desktop_id: int, max_width: int = 1280) -> Image:
        """A screenshot of the desktop's screen (PNG), at most max_width pixels wide."""
        desktop, token = caller.desktop(desktop_id)
        width = max(automation.SCALE_BOUNDS[0], min(max_width, automation.SCALE_BOUNDS[1]))
        shot = automation.screenshot(desktop=desktop, actor=token.user, token=token, max_width=width)
        return Image(data=shot.png, format="png")

    @server.tool()
    @_guarded
    def click(desktop_id: int, x: int, y: int, button: str = "left", double: bool = False) -> dict:
        """Click (or double-click) at screen pixel (x, y)."""
        kind = "double_click" if double else "click"
        return _input(caller, desktop_id, [{"type": kind, "x": x, "y": y, "button": button}])

    @server.tool(name="type")
    @_guarded
    def type_text(desktop_id: int, text: str) -> dict:
        """Type text on the desktop's keyboard (US layout; a line feed presses Enter)."""
        if len(text) > automation.MAX_TEXT_CHARS:
            raise ServiceError(
                gettext("Type at most %(MAX_TEXT_CHARS)s characters at once.")
                % {"MAX_TEXT_CHARS": automation.MAX_TEXT_CHARS},
                code="text_too_long",
            )
        return _input(caller, desktop_id, [{"type": "text", "text": text}])

    @server.tool()
    @_guarded
    def key(desktop_id: int, keys: str) -> dict:
        """Press a key or a chord, e.g. "enter", "ctrl+l", "ctrl+alt+delete"."""
        return _input(caller, desktop_id, [{"type": "key", "keys": keys}])

    @server.tool()
    @_guarded
    def scroll(desktop_id: int, x: int, y: int, dy: int) -> dict:
        """Scroll the wheel dy steps at (x, y): positive scrolls down."""
        steps = max(-automation.MAX_SCROLL_STEPS, min(dy, automation.MAX_SCROLL_STEPS))
        return _input(caller, desktop_id, [{"type": "scroll", "x": x, "y": y, "dy": steps}])

    @server.tool()
    @_guarded
    def wait(desktop_id: int, until: str = "change", timeout_ms: int = 5000) -> dict:
        """Wait until the screen changes ("change") or keeps still for half a second ("still")."""
        if until not in ("change", "still"):
            raise ServiceError(gettext("until is 'change' or 'still'."), code="invalid_until")
        desktop, token = caller.desktop(desktop_id)
        timeout = max(0, min(timeout_ms, automation.MAX_CHANGE_WAIT_MS))
        return automation.wait_for_screen(
            desktop=desktop, actor=token.user, token=token, until=until, timeout_ms=timeout
        )

    @server.tool(name="exec")
    @_guarded
    def run_command(desktop_id: int, argv: list[str], stdin: str = "", timeout_s: int = 30) -> dict:
        """Run a program in the desktop through its guest agent, where its template allows it (no shell: argv[0] is
        the program, e.g. ["/bin/sh", "-c", "ls /"]); answers exit_code, stdout, stderr and timed_out."""
        desktop, token = caller.desktop(desktop_id)
        caller.writable(token)
        result = automation_exec.run(
            desktop=desktop,
            argv=argv,
            stdin=stdin.encode(),
            timeout_s=timeout_s,
            actor=token.user,
            token=token,
            ip=caller.ip,
        )
        return result.as_dict()

    @server.tool()
    @_guarded
    def stop(desktop_id: int) -> dict:
        """Stop the desktop; a disposable one is deleted."""
        desktop, token = caller.desktop(desktop_id)
        if token.scope == TokenScope.AUTOMATION_READ:
            raise ServiceError(gettext("This token may only look."), code="token_read_only", status=403)
        caller.writable(token)
        if desktop.expires_at is not None:
            torn = disposable.tear_down(desktops=Desktop.objects.filter(pk=desktop.pk), actor=token.user, ip=caller.ip)
            [operation] = torn or [None]
        else:
            operation = request_stop(desktop=desktop, actor=token.user, ip=caller.ip)
        return {"id": desktop.pk, "operation": operation.pk if operation else None}

    return server
