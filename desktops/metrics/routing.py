"""WebSocket routes of the metrics app."""

from __future__ import annotations

from django.urls import URLPattern, path

from desktops.metrics.consumers import LiveConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/live/", LiveConsumer.as_asgi(), name="live-ws"),
]
