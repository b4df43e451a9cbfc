"""The audit log: who did what to which object, from where, and when."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.querysets import TenantQuerySet


class AuditEvent(models.Model):
    """One audited action; written only by services."""

    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    action = models.CharField(verbose_name=_("action"), max_length=64, db_index=True)
    target_type = models.CharField(verbose_name=_("target type"), max_length=64, blank=True)
    target_id = models.CharField(verbose_name=_("target id"), max_length=64, blank=True)
    target_repr = models.CharField(verbose_name=_("target repr"), max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(verbose_name=_("ip address"), null=True, blank=True)
    data = models.JSONField(verbose_name=_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now, db_index=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target_repr}"
