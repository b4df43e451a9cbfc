"""`/metrics` (Prometheus); the root URLconf includes this at its top level."""

from __future__ import annotations

from django.urls import path

from desktops.metrics import views

urlpatterns = [path("metrics", views.prometheus, name="metrics")]
