"""WebSocket routes of the desktops app."""

from __future__ import annotations

from django.urls import URLPattern, path

from desktops.console.consumers import ConsoleConsumer
from desktops.metrics.consumers import LiveConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/desktops/<int:pk>/console/", ConsoleConsumer.as_asgi(), name="desktop-console-ws"),
    path("ws/live/", LiveConsumer.as_asgi(), name="live-ws"),
]
