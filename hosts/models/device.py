"""GPUs found on hosts: passed through whole, or shared as mediated devices (vGPU)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class HostDevice(models.Model):
    """One PCI display device of a host; assignment changes only through the scheduler's claims."""

    host = models.ForeignKey("hosts.Host", verbose_name=_("host"), on_delete=models.CASCADE, related_name="devices")
    pci_address = models.CharField(verbose_name=_("pci address"), max_length=16, help_text=_('e.g. "0000:3b:00.0"'))
    nodedev_name = models.CharField(verbose_name=_("nodedev name"), max_length=64, blank=True)
    vendor_id = models.PositiveIntegerField(verbose_name=_("vendor id"), default=0)
    product_id = models.PositiveIntegerField(verbose_name=_("product id"), default=0)
    vendor_name = models.CharField(verbose_name=_("vendor name"), max_length=200, blank=True)
    product_name = models.CharField(verbose_name=_("product name"), max_length=200, blank=True)
    driver = models.CharField(verbose_name=_("driver"), max_length=64, blank=True)
    # {type_id: {"name": ..., "max_instances": n}}; the figure the kernel gave while we held none.
    mdev_types = models.JSONField(verbose_name=_("mdev types"), default=dict, blank=True)
    # False once a heartbeat no longer sees the device (unplugged, host reconfigured).
    present = models.BooleanField(verbose_name=_("present"), default=True)

    # Whole-device passthrough: the desktop holding it.
    assigned_desktop_id = models.BigIntegerField(verbose_name=_("assigned desktop id"), null=True, blank=True)
    # Mediated devices: one type at a time per GPU (NVIDIA's rule, and the safe one elsewhere).
    mdev_type_in_use = models.CharField(verbose_name=_("mdev type in use"), max_length=100, blank=True)
    mdev_instances_used = models.PositiveIntegerField(verbose_name=_("mdev instances used"), default=0)
    mdev_capacity = models.PositiveIntegerField(verbose_name=_("mdev capacity"), default=0)

    class Meta:
        verbose_name = _("host device")
        verbose_name_plural = _("host devices")
        ordering = ["host", "pci_address"]
        constraints = [
            models.UniqueConstraint(fields=["host", "pci_address"], name="hostdevice_unique_address"),
            # A device passed through whole cannot also serve vGPUs.
            models.CheckConstraint(
                condition=Q(assigned_desktop_id__isnull=True) | Q(mdev_instances_used=0),
                name="hostdevice_passthrough_or_mdev",
            ),
            models.CheckConstraint(
                condition=Q(mdev_instances_used__lte=models.F("mdev_capacity")) | Q(mdev_instances_used=0),
                name="hostdevice_mdev_within_capacity",
            ),
        ]

    def __str__(self) -> str:
        label = self.product_name or "GPU"
        return f"{label} ({self.pci_address})"

    @property
    def is_free(self) -> bool:
        """Nothing is placed on the device."""
        return self.assigned_desktop_id is None and self.mdev_instances_used == 0

    def mdev_available(self, type_id: str) -> int:
        """How many more instances of type_id this device could give (0 if another type is in use)."""
        if self.assigned_desktop_id is not None or type_id not in self.mdev_types:
            return 0
        if self.mdev_instances_used == 0:
            return int(self.mdev_types[type_id].get("max_instances", 0))
        if self.mdev_type_in_use != type_id:
            return 0
        return max(0, self.mdev_capacity - self.mdev_instances_used)
