"""Pools: warm, pre-made desktops of one template, claimed instantly and recycled after use."""

from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from desktops.choices import DesktopState
from tenants.choices import IdleAction
from tenants.querysets import TenantOwned

# A pool this large would be a fleet; the ceiling keeps a typo from asking the hosts for millions of VMs.
MAX_POOL_SIZE = 1000


class Pool(TenantOwned):
    """Keep `min_ready` desktops of a template warm for a tenant, never more than `max_size` in all."""

    class WarmState(models.TextChoices):
        RUNNING = "running", _("Running (instant)")
        HIBERNATED = "hibernated", _("Hibernated (seconds, no CPU used)")

    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="pools"
    )
    template = models.ForeignKey(
        "desktops.DesktopTemplate", verbose_name=_("template"), on_delete=models.PROTECT, related_name="pools"
    )
    name = models.CharField(verbose_name=_("name"), max_length=100)
    min_ready = models.PositiveIntegerField(
        verbose_name=_("min ready"), default=1, validators=[MaxValueValidator(MAX_POOL_SIZE)]
    )
    max_size = models.PositiveIntegerField(
        verbose_name=_("max size"), default=10, validators=[MaxValueValidator(MAX_POOL_SIZE)]
    )
    warm_state = models.CharField(
        verbose_name=_("warm state"), max_length=16, choices=WarmState.choices, default=WarmState.RUNNING
    )
    idle_action = models.CharField(
        verbose_name=_("idle action"), max_length=16, choices=IdleAction.choices, default=IdleAction.RECYCLE
    )
    enabled = models.BooleanField(verbose_name=_("enabled"), default=True)

    class Meta:
        verbose_name = _("pool")
        verbose_name_plural = _("pools")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "template"], name="pool_unique_tenant_template"),
            models.CheckConstraint(condition=models.Q(min_ready__lte=models.F("max_size")), name="pool_min_le_max"),
        ]

    def __str__(self) -> str:
        return self.name

    def ready_count(self) -> int:
        """Unassigned desktops that are warm now."""
        return self.desktops.filter(user__isnull=True, state=self.warm_state).count()

    def pending_count(self) -> int:
        """Unassigned desktops on their way to warm."""
        return self.desktops.filter(
            user__isnull=True,
            state__in=[DesktopState.REQUESTED, DesktopState.PROVISIONING, DesktopState.STARTING],
        ).count()
