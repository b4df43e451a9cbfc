"""Usage reports: a batch of ledger rows sent to Stripe as one meter event with a stable identifier."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from tenants.querysets import TenantQuerySet


class UsageReport(models.Model):
    """One meter event. Its rows are fixed when it is created, so every retry sends the same thing.

    The identifier is derived from this row; Stripe refuses a second event with the same one, so a
    retry or a second worker can never count usage twice.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey("billing.BillingAccount", on_delete=models.PROTECT, related_name="reports")
    day = models.DateField(help_text="The UTC day all its rows started in.")
    seconds = models.PositiveBigIntegerField()
    amount = models.DecimalField(max_digits=16, decimal_places=6)
    value = models.PositiveBigIntegerField(help_text="What the meter receives: the amount in millionths.")
    event_timestamp = models.DateTimeField(help_text="The meter event's timestamp: the last second of usage.")
    created_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    duplicate = models.BooleanField(default=False, help_text="Stripe already had it: an earlier attempt got through.")
    stripe_answer = models.JSONField(default=dict, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["sent_at", "lease_until"])]

    def __str__(self) -> str:
        return f"{self.identifier} ({self.value})"

    @property
    def identifier(self) -> str:
        return f"qz-usage-{self.uuid.hex}"
