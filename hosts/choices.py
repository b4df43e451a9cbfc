"""Fixed vocabularies of the hosts app."""

from __future__ import annotations

from django.db import models


class HostState(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    UP = "up", "Up"
    DOWN = "down", "Down"


class VirtType(models.TextChoices):
    KVM = "kvm", "KVM (hardware virtualisation)"
    QEMU = "qemu", "QEMU (software emulation, TCG)"


class ImageFormat(models.TextChoices):
    QCOW2 = "qcow2", "qcow2"
    RAW = "raw", "raw"


class CopyState(models.TextChoices):
    PENDING = "pending", "Pending"
    COPYING = "copying", "Copying"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class SchedulerStrategy(models.TextChoices):
    SPREAD = "spread", "Spread (least loaded host first)"
    PACK = "pack", "Pack (fullest host that fits first)"


class GpuProfileKind(models.TextChoices):
    NONE = "none", "No GPU"
    PASSTHROUGH = "passthrough", "Whole GPU"
    MDEV = "mdev", "Mediated device"
