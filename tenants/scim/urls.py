"""The admin console's provisioning page (scim:*): the SCIM base URL, the token, the group → role mapping."""

from __future__ import annotations

from django.urls import path

from tenants.scim import pages

app_name = "scim"
urlpatterns = [
    path("manage/provisioning/", pages.DirectoryView.as_view(), name="directory"),
]
