"""What the scheduler has given each desktop on its host."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Allocation(models.Model):
    """One desktop's claim on a host; desktop_id is a plain id so hosts never imports desktops."""

    desktop_id = models.BigIntegerField(verbose_name=_("desktop id"), unique=True)
    host = models.ForeignKey("hosts.Host", verbose_name=_("host"), on_delete=models.PROTECT, related_name="allocations")
    vcpus = models.PositiveIntegerField(verbose_name=_("vcpus"))
    memory_mib = models.PositiveBigIntegerField(verbose_name=_("memory mib"))
    # What the running desktop used at the last heartbeat; None: not running then, or not measured.
    measured_memory_mib = models.PositiveBigIntegerField(verbose_name=_("measured memory mib"), null=True, blank=True)
    gpu_profile = models.CharField(verbose_name=_("gpu profile"), max_length=110, default="none")
    gpu_device = models.ForeignKey(
        "hosts.HostDevice",
        verbose_name=_("gpu device"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="allocations",
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("allocation")
        verbose_name_plural = _("allocations")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"desktop {self.desktop_id} on {self.host_id}"
