"""Usage reports: a batch of ledger rows sent to Stripe as one meter event with a stable identifier."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.querysets import TenantQuerySet


class UsageReport(models.Model):
    """One meter event. Its rows are fixed when it is created, so every retry sends the same thing.

    The identifier is derived from this row; Stripe refuses a second event with the same one, so a
    retry or a second worker can never count usage twice.
    """

    uuid = models.UUIDField(verbose_name=_("uuid"), default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "billing.BillingAccount", verbose_name=_("account"), on_delete=models.PROTECT, related_name="reports"
    )
    day = models.DateField(verbose_name=_("day"), help_text=_("The UTC day all its rows started in."))
    seconds = models.PositiveBigIntegerField(verbose_name=_("seconds"))
    amount = models.DecimalField(verbose_name=_("amount"), max_digits=16, decimal_places=6)
    value = models.PositiveBigIntegerField(
        verbose_name=_("value"), help_text=_("What the meter receives: the amount in millionths.")
    )
    event_timestamp = models.DateTimeField(
        verbose_name=_("event timestamp"), help_text=_("The meter event's timestamp: the last second of usage.")
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    claimed_by = models.CharField(verbose_name=_("claimed by"), max_length=64, blank=True)
    lease_until = models.DateTimeField(verbose_name=_("lease until"), null=True, blank=True)
    attempts = models.PositiveIntegerField(verbose_name=_("attempts"), default=0)
    last_attempt_at = models.DateTimeField(verbose_name=_("last attempt at"), null=True, blank=True)
    last_error = models.TextField(verbose_name=_("last error"), blank=True)
    sent_at = models.DateTimeField(verbose_name=_("sent at"), null=True, blank=True)
    duplicate = models.BooleanField(
        verbose_name=_("duplicate"),
        default=False,
        help_text=_("Stripe already had it: an earlier attempt got through."),
    )
    stripe_answer = models.JSONField(verbose_name=_("stripe answer"), default=dict, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("usage report")
        verbose_name_plural = _("usage reports")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["sent_at", "lease_until"])]

    def __str__(self) -> str:
        return f"{self.identifier} ({self.value})"

    @property
    def identifier(self) -> str:
        return f"qz-usage-{self.uuid.hex}"
