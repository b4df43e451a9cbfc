"""Launch timings: how long a person waited from "Launch" until the desktop was ready for input."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from desktops.choices import LaunchKind
from tenants.querysets import TenantOwned, TenantQuerySet


class LaunchTiming(TenantOwned):
    """One launch: warm (a pooled desktop already up) or cold (a VM had to boot), and its time to ready."""

    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="launch_timings"
    )
    desktop = models.ForeignKey(
        "desktops.Desktop", verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="launch_timings"
    )
    template = models.ForeignKey(
        "desktops.DesktopTemplate", verbose_name=_("template"), on_delete=models.CASCADE, related_name="launch_timings"
    )
    kind = models.CharField(verbose_name=_("kind"), max_length=8, choices=LaunchKind.choices)
    requested_at = models.DateTimeField(verbose_name=_("requested at"), default=timezone.now)
    ready_at = models.DateTimeField(verbose_name=_("ready at"), null=True, blank=True)
    seconds = models.FloatField(
        verbose_name=_("seconds"), null=True, blank=True, help_text=_("Launch to ready for input.")
    )
    # How readiness was known: the guest's serial line, its agent, or a settled screen.
    signal = models.CharField(verbose_name=_("signal"), max_length=16, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("launch timing")
        verbose_name_plural = _("launch timings")
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["tenant", "template", "kind", "requested_at"])]

    def __str__(self) -> str:
        return f"{self.kind} launch of {self.desktop_id}: {self.seconds}"
