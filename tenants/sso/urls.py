"""Routes of single sign-on: the admin console's provider pages (sso:*) and the sign-in page's routing answer."""

from __future__ import annotations

from django.urls import path

from tenants.sso import views

app_name = "sso"
urlpatterns = [
    path("manage/sign-in/", views.ProvidersView.as_view(), name="providers"),
    path("manage/sign-in/<int:pk>/", views.ProviderEditView.as_view(), name="provider"),
    path("manage/sign-in/<int:pk>/test/", views.ProviderTestView.as_view(), name="provider-test"),
    path("manage/sign-in/<int:pk>/delete/", views.ProviderDeleteView.as_view(), name="provider-delete"),
    path("manage/sign-in/domains/<int:pk>/verify/", views.DomainVerifyView.as_view(), name="domain-verify"),
    path("manage/sign-in/domains/<int:pk>/remove/", views.DomainRemoveView.as_view(), name="domain-remove"),
    path("accounts/sso/route/", views.route, name="route"),
    path("accounts/sso/password/", views.LdapSignInView.as_view(), name="ldap-login"),
]
