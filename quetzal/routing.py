"""WebSocket routes of every app, gathered in one list (quetzal/asgi.py wraps it in the middleware once)."""

from __future__ import annotations

from django.urls import URLPattern

from desktops.console.routing import websocket_urlpatterns as console_websockets
from desktops.metrics.routing import websocket_urlpatterns as metrics_websockets

websocket_urlpatterns: list[URLPattern] = [*console_websockets, *metrics_websockets]
