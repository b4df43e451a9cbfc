"""Portal pages of the desktops app."""

from __future__ import annotations

from django.urls import path

from desktops import views

app_name = "portal"
urlpatterns = [
    path("", views.PortalView.as_view(), name="home"),
]
