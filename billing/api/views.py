"""Billing API: tenant admins read their ledger and invoices; absent (404) with billing off."""

from __future__ import annotations

from django.utils.translation import gettext
from rest_framework import mixins

from billing import conf
from billing.api import serializers as s
from billing.errors import BillingDisabled
from billing.filters import UsageIntervalFilterSet
from billing.models import Invoice, UsageInterval
from quetzal.api.viewsets import TenantScopedViewSet


class BillingViewSet(TenantScopedViewSet):
    """Admin-only and present only with billing on."""

    admin_only = True
    may_be_absent = True  # every route answers 404 while billing is off

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication and permissions answer first
        method = request.method.lower()
        served = method in self.http_method_names and hasattr(self, method)  # else 405 follows
        if served and not conf.billing_enabled():
            raise BillingDisabled(gettext("Billing is not enabled on this installation."))


class UsageIntervalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BillingViewSet):
    """The tenant's usage ledger: one row per stretch a desktop ran, at one price."""

    queryset = UsageInterval.objects.all()
    serializer_class = s.UsageIntervalSerializer
    filterset_class = UsageIntervalFilterSet


class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BillingViewSet):
    """The tenant's Stripe invoices as last received from Stripe."""

    queryset = Invoice.objects.all()
    serializer_class = s.InvoiceSerializer
