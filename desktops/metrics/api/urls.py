"""API routes of the metrics app (under /api/v1/)."""

from __future__ import annotations

from django.urls import path

from desktops.metrics.api import views

urlpatterns = [
    path(
        "desktops/<int:pk>/metrics/",
        views.DesktopMetricsViewSet.as_view({"get": "retrieve"}),
        name="desktop-metrics",
    ),
    path("metrics/tenant/", views.TenantMetricsViewSet.as_view({"get": "series"}), name="tenant-metrics"),
    path("metrics/hosts/<int:pk>/", views.HostMetricsViewSet.as_view({"get": "retrieve"}), name="host-metrics"),
]
