"""What the scheduler has given each desktop on its host."""

from __future__ import annotations

from django.db import models


class Allocation(models.Model):
    """One desktop's claim on a host; desktop_id is a plain id so hosts never imports desktops."""

    desktop_id = models.BigIntegerField(unique=True)
    host = models.ForeignKey("hosts.Host", on_delete=models.PROTECT, related_name="allocations")
    vcpus = models.PositiveIntegerField()
    memory_mib = models.PositiveBigIntegerField()
    gpu_profile = models.CharField(max_length=110, default="none")
    gpu_device = models.ForeignKey(
        "hosts.HostDevice", null=True, blank=True, on_delete=models.PROTECT, related_name="allocations"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"desktop {self.desktop_id} on {self.host_id}"
