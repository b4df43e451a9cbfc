"""Billing pages and the Stripe webhook (mounted at the site root)."""

from __future__ import annotations

from django.urls import path

from billing.views import pages, webhook

app_name = "billing"
urlpatterns = [
    path("billing/stripe/webhook/", webhook.stripe_webhook, name="stripe-webhook"),
    path("manage/billing/", pages.TenantBillingView.as_view(), name="tenant"),
    path("manage/billing/usage.csv", pages.TenantUsageCsvView.as_view(), name="tenant-csv"),
    path("manage/billing/checkout/", pages.CheckoutView.as_view(), name="checkout"),
    path("manage/billing/portal/", pages.PortalView.as_view(), name="portal"),
    path("operations/billing/", pages.OperatorUsageView.as_view(), name="operator"),
    path("operations/billing/usage.csv", pages.OperatorUsageCsvView.as_view(), name="operator-csv"),
]
