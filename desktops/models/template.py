"""Desktop templates: what a person can launch."""

from __future__ import annotations

from decimal import Decimal
from typing import Self

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from desktops.choices import FirmwareChoice, GpuKind, KeyboardLayout, OsFamily, Visibility
from tenants.querysets import TenantQuerySet

# Hard bounds on every size anyone may ask for, whatever a template says (libvirt's own limits are far above).
MAX_VCPUS = 128
MIN_MEMORY_MIB = 64
MAX_MEMORY_MIB = 1024 * 1024
MAX_DISK_GIB = 16 * 1024


class TemplateQuerySet(TenantQuerySet):
    """for_tenant(t), as everywhere: the templates t owns, enabled or not (what its admins manage)."""

    def launchable_by(self, tenant) -> Self:
        """Enabled public templates plus the tenant's enabled private ones: what its people may launch."""
        if tenant is None:
            return self.none()
        return self.filter(Q(visibility=Visibility.PUBLIC) | Q(tenant=tenant), enabled=True)


class DesktopTemplate(models.Model):
    """A launchable desktop: image, size, GPU, price and first-boot configuration."""

    name = models.CharField(verbose_name=_("name"), max_length=100)
    description = models.CharField(verbose_name=_("description"), max_length=300, blank=True)
    os_family = models.CharField(
        verbose_name=_("os family"), max_length=16, choices=OsFamily.choices, default=OsFamily.LINUX
    )
    image = models.ForeignKey(
        "hosts.Image", verbose_name=_("image"), on_delete=models.PROTECT, related_name="templates"
    )
    # The default size: what pools and launches without a size get, and what price_per_hour is for.
    vcpus = models.PositiveIntegerField(
        verbose_name=_("vcpus"), default=2, validators=[MinValueValidator(1), MaxValueValidator(MAX_VCPUS)]
    )
    memory_mib = models.PositiveIntegerField(
        verbose_name=_("memory mib"),
        default=2048,
        validators=[MinValueValidator(MIN_MEMORY_MIB), MaxValueValidator(MAX_MEMORY_MIB)],
    )
    disk_gib = models.PositiveIntegerField(
        verbose_name=_("disk gib"), default=20, validators=[MinValueValidator(1), MaxValueValidator(MAX_DISK_GIB)]
    )
    # Custom sizes: the ranges people may pick from; empty means the default only. Disks only grow from the
    # template's (the image is cloned at that size), so the disk range starts at disk_gib.
    min_vcpus = models.PositiveIntegerField(
        verbose_name=_("min vcpus"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_VCPUS)],
    )
    max_vcpus = models.PositiveIntegerField(
        verbose_name=_("max vcpus"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_VCPUS)],
    )
    min_memory_mib = models.PositiveIntegerField(
        verbose_name=_("min memory mib"),
        null=True,
        blank=True,
        validators=[MinValueValidator(MIN_MEMORY_MIB), MaxValueValidator(MAX_MEMORY_MIB)],
    )
    max_memory_mib = models.PositiveIntegerField(
        verbose_name=_("max memory mib"),
        null=True,
        blank=True,
        validators=[MinValueValidator(MIN_MEMORY_MIB), MaxValueValidator(MAX_MEMORY_MIB)],
    )
    max_disk_gib = models.PositiveIntegerField(
        verbose_name=_("max disk gib"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DISK_GIB)],
    )
    # What a size costs on top of (or below) price_per_hour, per unit away from the default size.
    price_per_vcpu_hour = models.DecimalField(
        verbose_name=_("price per vcpu hour"),
        max_digits=10,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal(0))],
    )
    price_per_gib_ram_hour = models.DecimalField(
        verbose_name=_("price per gib ram hour"),
        max_digits=10,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal(0))],
    )
    price_per_disk_gib_hour = models.DecimalField(
        verbose_name=_("price per disk gib hour"),
        max_digits=10,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal(0))],
    )
    gpu_kind = models.CharField(
        verbose_name=_("gpu kind"), max_length=16, choices=GpuKind.choices, default=GpuKind.NONE
    )
    gpu_mdev_type = models.CharField(
        verbose_name=_("gpu mdev type"),
        max_length=100,
        blank=True,
        help_text=_("e.g. nvidia-63, when gpu_kind is mdev"),
    )
    price_per_hour = models.DecimalField(
        verbose_name=_("price per hour"), max_digits=10, decimal_places=4, default=Decimal("0")
    )
    visibility = models.CharField(
        verbose_name=_("visibility"), max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    tenant = models.ForeignKey(
        "tenants.Tenant",
        verbose_name=_("tenant"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="private_templates",
    )
    # First-boot configuration rendered into a cloud-init NoCloud seed per desktop.
    cloud_init_user = models.CharField(verbose_name=_("cloud init user"), max_length=32, blank=True, default="quetzal")
    cloud_init_password = models.CharField(verbose_name=_("cloud init password"), max_length=128, blank=True)
    cloud_init_ssh_key = models.TextField(verbose_name=_("cloud init ssh key"), blank=True)
    cloud_init_packages = models.TextField(
        verbose_name=_("cloud init packages"), blank=True, help_text=_("One package per line.")
    )
    # A graphical guest with spice-vdagent gets QEMU's clipboard channel; sound goes out over VNC.
    clipboard_channel = models.BooleanField(
        verbose_name=_("clipboard channel"), default=False, help_text=_("The guest runs spice-vdagent.")
    )
    sound = models.BooleanField(
        verbose_name=_("sound"), default=False, help_text=_("An HDA sound card streamed to the browser.")
    )
    # The guest's platform (desktops.services.guest_platform): each empty/None follows the OS family's default.
    firmware = models.CharField(
        verbose_name=_("firmware"), max_length=16, choices=FirmwareChoice.choices, blank=True, default=""
    )
    tpm = models.BooleanField(
        verbose_name=_("tpm"),
        null=True,
        blank=True,
        help_text=_("An emulated TPM 2.0 (empty: Windows gets one, Linux does not)."),
    )
    virtio_drivers = models.BooleanField(
        verbose_name=_("virtio drivers"),
        default=False,
        help_text=_("Windows has the virtio drivers: virtio disk and network instead of SATA and e1000e."),
    )
    keyboard_layout = models.CharField(
        verbose_name=_("keyboard layout"),
        max_length=8,
        choices=KeyboardLayout.choices,
        default=KeyboardLayout.US,
        help_text=_("The layout its guest reads keys with: text typed through the automation API is typed for it."),
    )
    # Commands run as the guest agent's user (root on Linux): off unless an admin says this template's guests may.
    automation_exec_enabled = models.BooleanField(
        verbose_name=_("automation exec enabled"),
        default=False,
        help_text=_("Scripts with an exec token may run commands in its desktops through the guest agent."),
    )
    enabled = models.BooleanField(verbose_name=_("enabled"), default=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    objects = TemplateQuerySet.as_manager()

    class Meta:
        verbose_name = _("desktop template")
        verbose_name_plural = _("desktop templates")
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
            # The default size lies inside the ranges, so a launch without a size is always allowed.
            models.CheckConstraint(
                condition=(Q(min_vcpus__isnull=True) | Q(min_vcpus__lte=F("vcpus")))
                & (Q(max_vcpus__isnull=True) | Q(max_vcpus__gte=F("vcpus")))
                & (Q(min_memory_mib__isnull=True) | Q(min_memory_mib__lte=F("memory_mib")))
                & (Q(max_memory_mib__isnull=True) | Q(max_memory_mib__gte=F("memory_mib")))
                & (Q(max_disk_gib__isnull=True) | Q(max_disk_gib__gte=F("disk_gib"))),
                name="template_default_size_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def gpu_profile(self) -> str:
        """The scheduler's spelling of the GPU need: none, passthrough or mdev:<type>."""
        return f"mdev:{self.gpu_mdev_type}" if self.gpu_kind == GpuKind.MDEV else self.gpu_kind


class TemplateSizeQuerySet(TenantQuerySet):
    """for_tenant(t): the named sizes of the templates t owns (its private ones), as its admins manage them."""

    tenant_field = "template__tenant"


class TemplateSize(models.Model):
    """A named size a template offers ("Large: 4 vCPU / 16 GiB"), besides or instead of free ranges."""

    template = models.ForeignKey(
        DesktopTemplate, verbose_name=_("template"), on_delete=models.CASCADE, related_name="sizes"
    )
    name = models.CharField(verbose_name=_("name"), max_length=50)
    vcpus = models.PositiveIntegerField(
        verbose_name=_("vcpus"), validators=[MinValueValidator(1), MaxValueValidator(MAX_VCPUS)]
    )
    memory_mib = models.PositiveIntegerField(
        verbose_name=_("memory mib"), validators=[MinValueValidator(MIN_MEMORY_MIB), MaxValueValidator(MAX_MEMORY_MIB)]
    )
    disk_gib = models.PositiveIntegerField(
        verbose_name=_("disk gib"), validators=[MinValueValidator(1), MaxValueValidator(MAX_DISK_GIB)]
    )
    # Operators' price on top of the template's price per hour; empty: the template's per-unit rates decide.
    extra_per_hour = models.DecimalField(
        verbose_name=_("extra per hour"),
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("-100000")), MaxValueValidator(Decimal("100000"))],
    )

    objects = TemplateSizeQuerySet.as_manager()

    class Meta:
        verbose_name = _("template size")
        verbose_name_plural = _("template sizes")
        ordering = ["vcpus", "memory_mib", "disk_gib", "name"]
        constraints = [
            models.UniqueConstraint(fields=["template", "name"], name="template_size_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.vcpus} vCPU / {self.memory_mib} MiB / {self.disk_gib} GiB)"
