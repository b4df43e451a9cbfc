"""Portal pages of the desktops app."""

from __future__ import annotations

from django.urls import path

from desktops import views
from desktops.console import urls as console_urls

app_name = "portal"
urlpatterns = [
    path("", views.PortalView.as_view(), name="home"),
    path("desktops/<int:pk>/", views.DesktopDetailView.as_view(), name="desktop"),
    path("desktops/<int:pk>/card/", views.DesktopCardView.as_view(), name="desktop-card"),
    path("settings/", views.SettingsView.as_view(), name="settings"),
    path("files/", views.FilesView.as_view(), name="files"),
    *console_urls.urlpatterns,
]
