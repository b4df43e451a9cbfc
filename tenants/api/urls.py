"""API routes of the tenants app."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from tenants.api import views

router = SimpleRouter()
router.register("tenant", views.TenantViewSet, basename="tenant")
router.register("members", views.MemberViewSet, basename="member")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("tokens", views.ApiTokenViewSet, basename="token")
router.register("audit-events", views.AuditEventViewSet, basename="auditevent")
urlpatterns = router.urls
