"""Portal pages of the tenants app."""

from __future__ import annotations

from django.urls import path

from tenants.views import pages, twofactor

app_name = "tenants"
urlpatterns = [
    path("organisations/new/", pages.TenantCreateView.as_view(), name="create"),
    path("organisations/switch/", pages.tenant_switch, name="switch"),
    path("organisations/leave/", pages.LeaveView.as_view(), name="leave"),
    path("manage/members/", pages.MembersView.as_view(), name="members"),
    path("manage/policies/", pages.PoliciesView.as_view(), name="policies"),
    path("manage/audit/", pages.AuditView.as_view(), name="audit"),
    path("invitations/<str:token>/", pages.InvitationAcceptView.as_view(), name="invitation_accept"),
    path("settings/tokens/", pages.TokensView.as_view(), name="tokens"),
    path("settings/security/", twofactor.security, name="security"),
    path("accounts/2fa/setup/", twofactor.setup, name="2fa_setup"),
    path("accounts/2fa/verify/", twofactor.verify, name="2fa_verify"),
]
