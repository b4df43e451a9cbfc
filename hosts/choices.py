"""Fixed vocabularies of the hosts app."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class HostState(models.TextChoices):
    UNKNOWN = "unknown", _("Unknown")
    UP = "up", _("Up")
    DOWN = "down", _("Down")


class VirtType(models.TextChoices):
    KVM = "kvm", _("KVM (hardware virtualisation)")
    QEMU = "qemu", _("QEMU (software emulation, TCG)")


class ImageFormat(models.TextChoices):
    QCOW2 = "qcow2", _("qcow2")
    RAW = "raw", _("raw")


class CopyState(models.TextChoices):
    PENDING = "pending", _("Pending")
    COPYING = "copying", _("Copying")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")


class SchedulerStrategy(models.TextChoices):
    SPREAD = "spread", _("Spread (least loaded host first)")
    PACK = "pack", _("Pack (fullest host that fits first)")


class GpuProfileKind(models.TextChoices):
    NONE = "none", _("No GPU")
    PASSTHROUGH = "passthrough", _("Whole GPU")
    MDEV = "mdev", _("Mediated device")
