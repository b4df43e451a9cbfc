"""Channels middleware: WebSockets resolve their tenant like pages and the API do."""

from __future__ import annotations

from channels.db import database_sync_to_async

from tenants.addresses import scope_client_ip
from tenants.resolution import resolve_scope_tenant


class ActiveTenantMiddleware:
    """Put `membership` and `tenant` into the scope (None when anonymous or tenantless)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        membership = await database_sync_to_async(resolve_scope_tenant)(scope)
        scope = dict(scope, membership=membership, tenant=membership.tenant if membership else None)
        client = scope.get("client")
        if client:
            # Consumers read the client from the scope: give them the address HTTP requests get.
            scope["client"] = (scope_client_ip(scope), *client[1:])
        return await self.inner(scope, receive, send)
