"""WebSocket routes of every app, gathered in one list."""

from __future__ import annotations

from desktops.routing import websocket_urlpatterns as desktop_websockets

websocket_urlpatterns = [*desktop_websockets]
