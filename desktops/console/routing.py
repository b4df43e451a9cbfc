"""WebSocket routes of the console app."""

from __future__ import annotations

from django.urls import URLPattern, path

from desktops.console.audio import AudioConsumer
from desktops.console.consumers import ConsoleConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/desktops/<int:pk>/console/", ConsoleConsumer.as_asgi(), name="desktop-console-ws"),
    path("ws/desktops/<int:pk>/audio/", AudioConsumer.as_asgi(), name="desktop-audio-ws"),
]
