"""Root URLs: portal pages, accounts, the API, its schema and docs, and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.cache import cache_page
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from quetzal import health, help
from tenants.sso import flows as sso_flows

admin.site.site_header = "Quetzal operations"
admin.site.site_title = "Quetzal operations"
admin.site.index_title = "Hosts, images, templates, tenants and desktops"

# Under /api/ even the errors Django answers itself are JSON {code, detail}.
handler400 = "quetzal.api.errors.bad_request"
handler403 = "quetzal.api.errors.permission_denied"
handler404 = "quetzal.api.errors.page_not_found"
handler500 = "quetzal.api.errors.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    # The scripts' strings (the djangojs catalogue) in the request's language; cache_page keys on the language.
    path("jsi18n/", cache_page(86400)(JavaScriptCatalog.as_view()), name="javascript-catalog"),
    path("help/", help.page, name="help"),
    path("help/<slug:audience>/", help.page, name="help-for"),
    path("admin/", admin.site.urls),
    # allauth's OpenID Connect views, guarded so a broken tenant provider gives a page saying whom to ask, not a 500.
    path("accounts/oidc/<str:provider_id>/login/", sso_flows.login, name="openid_connect_login"),
    path("accounts/oidc/<str:provider_id>/login/callback/", sso_flows.callback, name="openid_connect_callback"),
    # allauth's SAML views, guarded alike; the SP metadata is published while the provider exists (tenants/sso/).
    path("accounts/saml/<str:organization_slug>/login/", sso_flows.saml_login, name="saml_login"),
    path("accounts/saml/<str:organization_slug>/acs/", sso_flows.saml_acs, name="saml_acs"),
    path("accounts/saml/<str:organization_slug>/acs/finish/", sso_flows.saml_finish_acs, name="saml_finish_acs"),
    path("accounts/saml/<str:organization_slug>/sls/", sso_flows.saml_sls, name="saml_sls"),
    path("accounts/saml/<str:organization_slug>/metadata/", sso_flows.saml_metadata, name="saml_metadata"),
    path("accounts/", include("allauth.urls")),
    path("api/", include("quetzal.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("tenants.urls")),
    path("", include("tenants.sso.urls")),
    path("", include("tenants.scim.urls")),
    # The directory's SCIM 2.0 endpoint, authenticated by the tenant's provisioning token (tenants/scim/).
    path("", include("tenants.scim.api_urls")),
    path("", include("desktops.urls")),
    path("", include("desktops.manage.urls")),
    path("", include("billing.urls")),
    path("", include("desktops.metrics.urls")),
    # The tenant admin pages were at /admin-console/ (a name that clashed with the desktop console):
    # bookmarks and links in old emails still land on the same page.
    re_path(
        r"^admin-console/(?P<rest>.*)$",
        RedirectView.as_view(url="/manage/%(rest)s", permanent=True, query_string=True),
        name="admin-console-moved",
    ),
]
