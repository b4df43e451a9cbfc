"""`/api/`: every app's API routes under /api/v1/, plus the original plan's /api/desktop/ calls."""

from __future__ import annotations

from django.urls import include, path

from desktops.api.urls import plan_urlpatterns

app_name = "api"
urlpatterns = [
    path("v1/", include("tenants.api.urls")),
    path("v1/", include("desktops.api.urls")),
    path("v1/", include("desktops.console.api.urls")),
    path("v1/", include("desktops.metrics.api.urls")),
    path("v1/", include("billing.api.urls")),
    path("desktop/", include(plan_urlpatterns)),
]
