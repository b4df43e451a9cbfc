"""Hypervisor hosts: what Quetzal learns from libvirt, what the operator sets, and health."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from hosts.choices import HostState, VirtType

# Fields an operator may change; everything else is learned from the host or kept by services.
OPERATOR_FIELDS = (
    "name",
    "enabled",
    "maintenance",
    "drain",
    "cpu_ratio",
    "ram_ratio",
    "reserved_memory_mib",
    "console_address",
    "virt_type",
    "storage_pool",
    "merge_memory_pages",
)


# Kept by hosts.scheduling.placement's conditional updates only.
COUNTER_FIELDS = ("allocated_vcpus", "allocated_memory_mib", "used_memory_mib", "measured_allocation_mib")


def default_console_address(uri: str) -> str:
    """The host named in a libvirt URI, or loopback for local URIs (qemu:///system)."""
    return urlsplit(uri).hostname or "127.0.0.1"


class Host(models.Model):
    """A libvirt host. Counters change only through hosts.scheduling.placement's conditional updates."""

    name = models.CharField(verbose_name=_("name"), max_length=100, unique=True)
    uri = models.CharField(
        verbose_name=_("uri"), max_length=500, unique=True, help_text=_("libvirt URI, e.g. qemu+ssh://root@host/system")
    )

    # Learned from libvirt at registration and on every heartbeat.
    hostname = models.CharField(verbose_name=_("hostname"), max_length=255, blank=True)
    arch = models.CharField(verbose_name=_("arch"), max_length=32, blank=True)
    cpus = models.PositiveIntegerField(verbose_name=_("cpus"), default=0)
    memory_mib = models.PositiveBigIntegerField(verbose_name=_("memory mib"), default=0)
    free_memory_mib = models.PositiveBigIntegerField(verbose_name=_("free memory mib"), default=0)
    virt_types = models.JSONField(
        verbose_name=_("virt types"), default=list, blank=True, help_text=_("Virtualisation types libvirt offers.")
    )
    detected_virt_type = models.CharField(
        verbose_name=_("detected virt type"), max_length=8, choices=VirtType.choices, blank=True
    )
    libvirt_version = models.CharField(verbose_name=_("libvirt version"), max_length=32, blank=True)
    hypervisor_version = models.CharField(verbose_name=_("hypervisor version"), max_length=32, blank=True)
    # What its QEMU offers guests, for Windows 11 templates; None where libvirt cannot say (its test driver).
    offers_uefi = models.BooleanField(
        verbose_name=_("offers UEFI"), null=True, blank=True, help_text=_("UEFI firmware (OVMF) for guests.")
    )
    offers_secure_boot = models.BooleanField(
        verbose_name=_("offers Secure Boot"), null=True, blank=True, help_text=_("UEFI firmware with Secure Boot.")
    )
    offers_tpm = models.BooleanField(
        verbose_name=_("offers a TPM"), null=True, blank=True, help_text=_("An emulated TPM 2.0 (swtpm).")
    )

    # Set by the operator.
    enabled = models.BooleanField(verbose_name=_("enabled"), default=True)
    maintenance = models.BooleanField(
        verbose_name=_("maintenance"), default=False, help_text=_("No new desktops; running ones may be moved away.")
    )
    drain = models.BooleanField(
        verbose_name=_("drain"), default=False, help_text=_("No new desktops; running ones stay until they end.")
    )
    cpu_ratio = models.FloatField(
        verbose_name=_("cpu ratio"), default=4.0, validators=[MinValueValidator(0.1), MaxValueValidator(64)]
    )
    ram_ratio = models.FloatField(
        verbose_name=_("ram ratio"), default=1.0, validators=[MinValueValidator(0.1), MaxValueValidator(8)]
    )
    reserved_memory_mib = models.PositiveIntegerField(
        verbose_name=_("reserved memory mib"),
        default=1024,
        validators=[MaxValueValidator(1024**3)],
        help_text=_("RAM kept for the host itself."),
    )
    console_address = models.CharField(
        verbose_name=_("console address"),
        max_length=255,
        blank=True,
        help_text=_("Address the console proxy uses to reach this host's VNC servers."),
    )
    virt_type = models.CharField(
        verbose_name=_("virt type"),
        max_length=8,
        choices=VirtType.choices,
        blank=True,
        help_text=_("Override; empty uses the detected type."),
    )
    storage_pool = models.CharField(verbose_name=_("storage pool"), max_length=100, default="default")
    merge_memory_pages = models.BooleanField(
        verbose_name=_("merge identical memory pages (KSM)"),
        default=False,
        help_text=_(
            "Kernel same-page merging: idle desktops of one template share their identical memory pages, so more "
            "fit in the host's RAM, at some CPU cost for scanning. libvirt cannot switch it on remotely: "
            "manage.py enrol_host and scripts/start-libvirtd write /sys/kernel/mm/ksm/run when run on the host as "
            "root; the heartbeat reports whether the host is merging."
        ),
    )

    # Health.
    state = models.CharField(
        verbose_name=_("state"), max_length=16, choices=HostState.choices, default=HostState.UNKNOWN, db_index=True
    )
    last_heartbeat_at = models.DateTimeField(verbose_name=_("last heartbeat at"), null=True, blank=True)
    last_error = models.TextField(verbose_name=_("last error"), blank=True)
    last_error_at = models.DateTimeField(verbose_name=_("last error at"), null=True, blank=True)

    # What placed desktops hold; the scheduler's claim is the only writer.
    allocated_vcpus = models.PositiveIntegerField(verbose_name=_("allocated vcpus"), default=0)
    allocated_memory_mib = models.PositiveBigIntegerField(verbose_name=_("allocated memory mib"), default=0)
    # What running desktops measured at the last heartbeat (hosts.scheduling.placement.record_guest_memory), and
    # the allocations of those same desktops: under overcommit they count at what they use, not what they hold.
    used_memory_mib = models.PositiveBigIntegerField(
        verbose_name=_("used memory mib"),
        default=0,
        help_text=_("What the running desktops use of their memory, measured at the last heartbeat."),
    )
    measured_allocation_mib = models.PositiveBigIntegerField(
        verbose_name=_("measured allocation mib"),
        default=0,
        help_text=_("The allocated memory of the desktops measured at the last heartbeat."),
    )

    # Kernel same-page merging, as the last heartbeat found it; None where the host has no KSM or cannot say.
    merged_memory_mib = models.PositiveBigIntegerField(
        verbose_name=_("merged memory mib"),
        null=True,
        blank=True,
        help_text=_("Memory that merged identical pages save (KSM pages_sharing)."),
    )
    memory_merging = models.BooleanField(
        verbose_name=_("merging memory pages"),
        null=True,
        blank=True,
        help_text=_("Whether KSM has merged pages or scanned memory since the host booted."),
    )

    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("host")
        verbose_name_plural = _("hosts")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(cpu_ratio__gt=0), name="host_cpu_ratio_positive"),
            models.CheckConstraint(condition=models.Q(ram_ratio__gt=0), name="host_ram_ratio_positive"),
            models.CheckConstraint(
                condition=models.Q(virt_type__in=["", *VirtType.values]), name="host_virt_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """Save; a whole-row save of an existing host leaves the scheduler's counters alone."""
        if not self._state.adding and kwargs.get("update_fields") is None:
            # A copy read before a placement would otherwise write the old counters back.
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name not in COUNTER_FIELDS
            ]
        super().save(*args, **kwargs)

    @property
    def effective_virt_type(self) -> str:
        """The virtualisation type desktops on this host use: the override, else the detected one."""
        return self.virt_type or self.detected_virt_type or VirtType.QEMU

    @property
    def windows_ready(self) -> bool | None:
        """Whether its QEMU offers what Windows 11 asks of a PC (UEFI with Secure Boot, a TPM); None: it cannot say."""
        offers = (self.offers_uefi, self.offers_secure_boot, self.offers_tpm)
        return None if None in offers else all(offers)

    @property
    def vcpu_capacity(self) -> int:
        """vCPUs placeable under the CPU overcommit ratio."""
        return max(0, math.floor(self.cpus * self.cpu_ratio))

    @property
    def memory_capacity_mib(self) -> int:
        """RAM placeable under the RAM ratio, after the host's reserve."""
        return max(0, math.floor((self.memory_mib - self.reserved_memory_mib) * self.ram_ratio))

    @property
    def free_vcpus(self) -> int:
        return max(0, self.vcpu_capacity - self.allocated_vcpus)

    @property
    def free_capacity_mib(self) -> int:
        return max(0, self.memory_capacity_mib - self.allocated_memory_mib)

    @property
    def overcommits_memory(self) -> bool:
        return self.ram_ratio > 1

    @property
    def physical_capacity_mib(self) -> int:
        """RAM for desktops without overcommit: the host's memory after its reserve."""
        return max(0, self.memory_mib - self.reserved_memory_mib)

    @property
    def memory_load_mib(self) -> int:
        """What desktops weigh on RAM: running ones measured at what they use, the rest at their allocation."""
        return max(0, self.allocated_memory_mib - self.measured_allocation_mib + self.used_memory_mib)

    @property
    def placeable_memory_mib(self) -> int:
        """RAM a new desktop may still be given here (hosts.scheduling.filters' RamFilter and SwapGuardFilter)."""
        room = self.free_capacity_mib
        if self.overcommits_memory:
            unmeasured = max(0, self.allocated_memory_mib - self.measured_allocation_mib)
            room = min(
                room,
                max(0, self.physical_capacity_mib - self.memory_load_mib),
                max(0, self.free_memory_mib - unmeasured - self.reserved_memory_mib),
            )
        return room

    @property
    def short_of_memory(self) -> bool:
        """The host's available memory is below its reserve: it is swapping, or about to."""
        return self.memory_mib > 0 and self.free_memory_mib < self.reserved_memory_mib

    @property
    def accepts_desktops(self) -> bool:
        """Whether the operator lets the scheduler use this host (health aside)."""
        return self.enabled and not self.maintenance and not self.drain
