"""Channels middleware: WebSockets resolve their tenant like pages and the API do."""

from __future__ import annotations

from channels.db import database_sync_to_async

from tenants.resolution import resolve_scope_tenant


# The pages' counterpart is tenants.middleware.ActiveTenantMiddleware (Django, per HTTP request).
class WebSocketTenantMiddleware:
    """Channels middleware: put `membership` and `tenant` into the scope (None when anonymous or tenantless)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        membership = await database_sync_to_async(resolve_scope_tenant)(scope)
        scope = dict(scope, membership=membership, tenant=membership.tenant if membership else None)
        return await self.inner(scope, receive, send)
