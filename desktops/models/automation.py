"""What an automation API token may drive: named desktops, or the desktops of a template."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tenants.querysets import TenantOwned


class AutomationTarget(TenantOwned):
    """One desktop, or one template (its desktops, and disposable ones made from it), an automation token may use."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey(
        "tenants.ApiToken", verbose_name=_("token"), on_delete=models.CASCADE, related_name="automation_targets"
    )
    desktop = models.ForeignKey(
        "desktops.Desktop", verbose_name=_("desktop"), null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    template = models.ForeignKey(
        "desktops.DesktopTemplate",
        verbose_name=_("template"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )

    class Meta:
        verbose_name = _("automation target")
        verbose_name_plural = _("automation targets")
        constraints = [
            models.CheckConstraint(
                condition=Q(desktop__isnull=False, template__isnull=True)
                | Q(desktop__isnull=True, template__isnull=False),
                name="automation_target_one_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.token} -> {self.desktop or self.template}"
