"""Root URLs: portal pages, accounts, the API, its schema and docs, and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from quetzal import health

admin.site.site_header = "Quetzal operations"
admin.site.site_title = "Quetzal operations"
admin.site.index_title = "Hosts, images, templates, tenants and desktops"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/", include("quetzal.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("tenants.urls")),
    path("", include("desktops.urls")),
    path("", include("billing.urls")),
    path("", include("desktops.metrics.urls")),
]
