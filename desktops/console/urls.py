"""Console page routes, mounted in the portal namespace by desktops/urls.py."""

from __future__ import annotations

from django.urls import path

from desktops.console import views

urlpatterns = [
    path("desktops/<int:pk>/console/", views.ConsolePageView.as_view(), name="console"),
    path("console/sessions/", views.ConsoleSessionsView.as_view(), name="console-sessions"),
    path("console/recordings/<int:pk>/", views.RecordingReplayView.as_view(), name="recording-replay"),
    path("console/recordings/<int:pk>/data/", views.RecordingDataView.as_view(), name="recording-data"),
]
