"""Billing API: tenant admins read their ledger and invoices; absent (404) with billing off."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins

from billing import conf
from billing.api import serializers as s
from billing.errors import BillingDisabled
from billing.models import Invoice, UsageInterval
from billing.periods import parse_period
from quetzal.api.viewsets import TenantScopedViewSet


class BillingViewSet(TenantScopedViewSet):
    """Admin-only and present only with billing on."""

    admin_only = True

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication and permissions answer first
        if not conf.billing_enabled():
            raise BillingDisabled("Billing is not enabled on this installation.")


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("period", OpenApiTypes.STR, description="A month, YYYY-MM (UTC).")])
)
class UsageIntervalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BillingViewSet):
    """The tenant's usage ledger: one row per stretch a desktop ran, at one price."""

    queryset = UsageInterval.objects.all()
    serializer_class = s.UsageIntervalSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        label = self.request.query_params.get("period")
        if label and self.action == "list":
            queryset = queryset.in_period(parse_period(label))
        return queryset


class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BillingViewSet):
    """The tenant's Stripe invoices as last received from Stripe."""

    queryset = Invoice.objects.all()
    serializer_class = s.InvoiceSerializer
