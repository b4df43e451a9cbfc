"""`/api/v1/`: every app's API routes under one prefix."""

from __future__ import annotations

from django.urls import include, path

app_name = "api"
urlpatterns = [
    path("", include("tenants.api.urls")),
]
