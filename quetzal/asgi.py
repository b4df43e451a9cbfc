"""ASGI entry point: HTTP through Django (but MCP at /mcp/, desktops.mcp_http), WebSockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quetzal.settings.base")
# The web server serves each request on a thread of its own: a bounded pool keeps a storm of them within
# PostgreSQL's connections (quetzal.settings.base, DB_POOL_SIZE). Workers and commands never import this module.
os.environ.setdefault("DB_POOL_SIZE", "10")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from desktops.mcp_http import mcp_application  # noqa: E402
from quetzal.origin import SameOriginMiddleware  # noqa: E402
from quetzal.routing import websocket_urlpatterns  # noqa: E402
from tenants.channels import WebSocketTenantMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        # MCP's streamable HTTP is a raw ASGI app of the SDK's, not a Django view: it is routed here, before Django
        # (with or without the slash, since a redirect would lose a client's POST), and checks Host, Origin and the
        # API token itself.
        "http": URLRouter([re_path(r"^mcp/?$", mcp_application), re_path(r"", django_asgi_app)]),
        # Origin first: a foreign page is refused before its cookies open a session. ALLOWED_HOSTS
        # still applies on top, since Origin and Host agreeing says nothing about the Host itself.
        "websocket": AllowedHostsOriginValidator(
            SameOriginMiddleware(AuthMiddlewareStack(WebSocketTenantMiddleware(URLRouter(websocket_urlpatterns))))
        ),
    }
)
