"""Launch timings: how long a person waited from "Launch" until the desktop was ready for input."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from desktops.choices import LaunchKind
from tenants.querysets import TenantOwned, TenantQuerySet


class LaunchTiming(TenantOwned):
    """One launch: warm (a pooled desktop already up) or cold (a VM had to boot), and its time to ready."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="launch_timings")
    desktop = models.ForeignKey("desktops.Desktop", on_delete=models.CASCADE, related_name="launch_timings")
    template = models.ForeignKey("desktops.DesktopTemplate", on_delete=models.CASCADE, related_name="launch_timings")
    kind = models.CharField(max_length=8, choices=LaunchKind.choices)
    requested_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Launch to ready for input.")
    # How readiness was known: the guest's serial line, its agent, or a settled screen.
    signal = models.CharField(max_length=16, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["tenant", "template", "kind", "requested_at"])]

    def __str__(self) -> str:
        return f"{self.kind} launch of {self.desktop_id}: {self.seconds}"
