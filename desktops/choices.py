"""Fixed vocabularies of the desktops app."""

from __future__ import annotations

from django.db import models


class OsFamily(models.TextChoices):
    LINUX = "linux", "Linux"
    WINDOWS = "windows", "Windows"


class GpuKind(models.TextChoices):
    NONE = "none", "No GPU"
    PASSTHROUGH = "passthrough", "Whole GPU (PCI passthrough)"
    MDEV = "mdev", "Shared GPU (mediated device)"


class Visibility(models.TextChoices):
    PUBLIC = "public", "All tenants"
    TENANT = "tenant", "One tenant"


class DesktopState(models.TextChoices):
    REQUESTED = "requested", "Requested"
    PROVISIONING = "provisioning", "Provisioning"
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    SUSPENDED = "suspended", "Suspended"
    HIBERNATED = "hibernated", "Hibernated"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    ERROR = "error", "Error"


class DesktopKind(models.TextChoices):
    PERSONAL = "personal", "Personal"
    POOLED = "pooled", "Pooled"


class OperationKind(models.TextChoices):
    CREATE = "create", "Create"
    START = "start", "Start"
    STOP = "stop", "Stop"
    REBOOT = "reboot", "Reboot"
    SUSPEND = "suspend", "Suspend"
    RESUME = "resume", "Resume"
    HIBERNATE = "hibernate", "Hibernate"
    RESTORE = "restore", "Restore"
    SNAPSHOT = "snapshot", "Snapshot"
    REVERT = "revert", "Revert"
    DELETE_SNAPSHOT = "delete_snapshot", "Delete snapshot"
    DELETE = "delete", "Delete"
    REBUILD = "rebuild", "Rebuild"


class OperationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
