"""API routes of the console app (under /api/v1/)."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from desktops.console.api import views

router = SimpleRouter()
router.register("console-sessions", views.ConsoleSessionViewSet, basename="consolesession")
router.register("recordings", views.RecordingViewSet, basename="recording")

urlpatterns = [
    path(
        "desktops/<int:pk>/console-ticket/",
        views.ConsoleTicketViewSet.as_view({"post": "create"}),
        name="desktop-console-ticket",
    ),
    *router.urls,
]
