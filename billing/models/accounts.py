"""A tenant's Stripe side: customer, subscription, payment method, invoices, arrears; webhook log."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.choices import InvoiceStatus
from tenants.querysets import TenantQuerySet


class StripeCatalog(models.Model):
    """The meter and usage price this installation bills with (one per meter event name and currency)."""

    event_name = models.CharField(verbose_name=_("event name"), max_length=100)
    currency = models.CharField(verbose_name=_("currency"), max_length=3)
    meter_id = models.CharField(verbose_name=_("meter id"), max_length=64)
    price_id = models.CharField(verbose_name=_("price id"), max_length=64, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("stripe catalog")
        verbose_name_plural = _("stripe catalogs")
        constraints = [models.UniqueConstraint(fields=["event_name", "currency"], name="billing_catalog_unique")]

    def __str__(self) -> str:
        return f"{self.event_name} {self.currency}: {self.meter_id} / {self.price_id}"


class BillingAccount(models.Model):
    """A tenant as a Stripe customer with a usage subscription, and its standing (arrears, grace)."""

    tenant = models.OneToOneField(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.PROTECT, related_name="billing_account"
    )
    uuid = models.UUIDField(verbose_name=_("uuid"), default=uuid.uuid4, unique=True, editable=False)
    exempt = models.BooleanField(
        verbose_name=_("exempt"), default=False, help_text=_("Usage is recorded but never charged.")
    )
    currency = models.CharField(verbose_name=_("currency"), max_length=3)
    stripe_customer_id = models.CharField(
        verbose_name=_("stripe customer id"), max_length=64, unique=True, null=True, blank=True
    )
    stripe_subscription_id = models.CharField(verbose_name=_("stripe subscription id"), max_length=64, blank=True)
    subscription_status = models.CharField(verbose_name=_("subscription status"), max_length=32, blank=True)
    payment_method_brand = models.CharField(verbose_name=_("payment method brand"), max_length=32, blank=True)
    payment_method_last4 = models.CharField(verbose_name=_("payment method last4"), max_length=4, blank=True)
    payment_method_expires = models.CharField(
        verbose_name=_("payment method expires"), max_length=7, blank=True, help_text=_("MM/YYYY")
    )
    arrears_since = models.DateTimeField(
        verbose_name=_("arrears since"), null=True, blank=True, help_text=_("First unpaid failed payment.")
    )
    grace_until = models.DateTimeField(verbose_name=_("grace until"), null=True, blank=True)
    suspended_by_billing = models.BooleanField(verbose_name=_("suspended by billing"), default=False)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("billing account")
        verbose_name_plural = _("billing accounts")
        ordering = ["tenant__name"]

    def __str__(self) -> str:
        return f"Billing of {self.tenant}"

    @property
    def customer_id(self) -> str:
        """The Stripe customer id; every caller runs after ensure_account, which always sets it."""
        if not self.stripe_customer_id:
            raise ValueError(f"{self} has no Stripe customer yet")
        return self.stripe_customer_id

    @property
    def in_arrears(self) -> bool:
        return self.arrears_since is not None

    @property
    def has_payment_method(self) -> bool:
        return bool(self.payment_method_last4)


class Invoice(models.Model):
    """Stripe's invoice as last fetched from Stripe (webhooks re-fetch it; the copy is for listing)."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        BillingAccount, verbose_name=_("account"), on_delete=models.PROTECT, related_name="invoices"
    )
    stripe_id = models.CharField(verbose_name=_("stripe id"), max_length=64, unique=True)
    number = models.CharField(verbose_name=_("number"), max_length=64, blank=True)
    status = models.CharField(verbose_name=_("status"), max_length=16, choices=InvoiceStatus.choices)
    currency = models.CharField(verbose_name=_("currency"), max_length=3)
    amount_due = models.DecimalField(verbose_name=_("amount due"), max_digits=14, decimal_places=2, default=Decimal(0))
    amount_paid = models.DecimalField(
        verbose_name=_("amount paid"), max_digits=14, decimal_places=2, default=Decimal(0)
    )
    amount_remaining = models.DecimalField(
        verbose_name=_("amount remaining"), max_digits=14, decimal_places=2, default=Decimal(0)
    )
    payment_failed = models.BooleanField(
        verbose_name=_("payment failed"), default=False, help_text=_("Open after a failed collection attempt.")
    )
    period_start = models.DateTimeField(verbose_name=_("period start"), null=True, blank=True)
    period_end = models.DateTimeField(verbose_name=_("period end"), null=True, blank=True)
    issued_at = models.DateTimeField(verbose_name=_("issued at"), null=True, blank=True)
    paid_at = models.DateTimeField(verbose_name=_("paid at"), null=True, blank=True)
    hosted_invoice_url = models.URLField(verbose_name=_("hosted invoice url"), max_length=500, blank=True)
    invoice_pdf = models.URLField(verbose_name=_("invoice pdf"), max_length=500, blank=True)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-issued_at", "-id"]

    def __str__(self) -> str:
        return self.number or self.stripe_id

    @property
    def overdue(self) -> bool:
        return self.status == InvoiceStatus.OPEN and self.payment_failed


class WebhookEvent(models.Model):
    """A Stripe event processed once: the row is written in the transaction that applies its effect."""

    stripe_event_id = models.CharField(verbose_name=_("stripe event id"), max_length=255, unique=True)
    type = models.CharField(verbose_name=_("type"), max_length=100)
    object_id = models.CharField(verbose_name=_("object id"), max_length=255, blank=True)
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stripe_created = models.DateTimeField(verbose_name=_("stripe created"), null=True, blank=True)
    received_at = models.DateTimeField(verbose_name=_("received at"), default=timezone.now)
    outcome = models.CharField(verbose_name=_("outcome"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_event_id}"
