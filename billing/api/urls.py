"""API routes of the billing app (mounted under /api/v1/)."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from billing.api import views

router = SimpleRouter()
router.register("billing/usage", views.UsageIntervalViewSet, basename="billing-usage")
router.register("billing/invoices", views.InvoiceViewSet, basename="billing-invoice")
urlpatterns = router.urls
