"""The SCIM 2.0 protocol routes (scimv2:*), authenticated by the tenant's provisioning token."""

from __future__ import annotations

from django.urls import path

from tenants.scim import views

app_name = "scimv2"
urlpatterns = [
    path("scim/v2/Users", views.UsersView.as_view(), name="users"),
    path("scim/v2/Users/<str:scim_id>", views.UserView.as_view(), name="user"),
    path("scim/v2/Groups", views.GroupsView.as_view(), name="groups"),
    path("scim/v2/Groups/<str:scim_id>", views.GroupView.as_view(), name="group"),
    path("scim/v2/ServiceProviderConfig", views.ServiceProviderConfigView.as_view(), name="service-provider-config"),
    path("scim/v2/ResourceTypes", views.ResourceTypesView.as_view(), name="resource-types"),
    path("scim/v2/ResourceTypes/<str:name>", views.ResourceTypesView.as_view(), name="resource-type"),
    path("scim/v2/Schemas", views.SchemasView.as_view(), name="schemas"),
    path("scim/v2/Schemas/<str:urn>", views.SchemasView.as_view(), name="schema"),
    path("scim/v2/.search", views.SearchView.as_view(), name="search"),
    # Anything else under the base URL is a SCIM 404, not the site's page.
    path("scim/v2/<path:rest>", views.NotFoundView.as_view(), name="not-found"),
]
