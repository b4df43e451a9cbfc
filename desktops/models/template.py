"""Desktop templates: what a person can launch."""

from __future__ import annotations

from decimal import Decimal
from typing import Self

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from desktops.choices import GpuKind, OsFamily, Visibility
from tenants.querysets import TenantQuerySet


class TemplateQuerySet(TenantQuerySet):
    """for_tenant(t), as everywhere: the templates t owns, enabled or not (what its admins manage)."""

    def launchable_by(self, tenant) -> Self:
        """Enabled public templates plus the tenant's enabled private ones: what its people may launch."""
        if tenant is None:
            return self.none()
        return self.filter(Q(visibility=Visibility.PUBLIC) | Q(tenant=tenant), enabled=True)


class DesktopTemplate(models.Model):
    """A launchable desktop: image, size, GPU, price and first-boot configuration."""

    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    os_family = models.CharField(max_length=16, choices=OsFamily.choices, default=OsFamily.LINUX)
    image = models.ForeignKey("hosts.Image", on_delete=models.PROTECT, related_name="templates")
    # Ceilings well above any host libvirt drives today, and far below the column's range.
    vcpus = models.PositiveIntegerField(default=2, validators=[MinValueValidator(1), MaxValueValidator(1024)])
    memory_mib = models.PositiveIntegerField(
        default=2048, validators=[MinValueValidator(64), MaxValueValidator(16 * 1024 * 1024)]
    )
    disk_gib = models.PositiveIntegerField(default=20, validators=[MinValueValidator(1), MaxValueValidator(65536)])
    gpu_kind = models.CharField(max_length=16, choices=GpuKind.choices, default=GpuKind.NONE)
    gpu_mdev_type = models.CharField(max_length=100, blank=True, help_text="e.g. nvidia-63, when gpu_kind is mdev")
    price_per_hour = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="private_templates"
    )
    # First-boot configuration rendered into a cloud-init NoCloud seed per desktop.
    cloud_init_user = models.CharField(max_length=32, blank=True, default="quetzal")
    cloud_init_password = models.CharField(max_length=128, blank=True)
    cloud_init_ssh_key = models.TextField(blank=True)
    cloud_init_packages = models.TextField(blank=True, help_text="One package per line.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TemplateQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(visibility=Visibility.PUBLIC, tenant__isnull=True)
                | Q(visibility=Visibility.TENANT, tenant__isnull=False),
                name="template_visibility_matches_tenant",
            ),
            models.CheckConstraint(
                condition=~Q(gpu_kind=GpuKind.MDEV) | ~Q(gpu_mdev_type=""), name="template_mdev_needs_type"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def gpu_profile(self) -> str:
        """The scheduler's spelling of the GPU need: none, passthrough or mdev:<type>."""
        return f"mdev:{self.gpu_mdev_type}" if self.gpu_kind == GpuKind.MDEV else self.gpu_kind
