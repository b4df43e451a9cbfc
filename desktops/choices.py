"""Fixed vocabularies of the desktops app."""

from __future__ import annotations

from django.db import models


class OsFamily(models.TextChoices):
    LINUX = "linux", "Linux"
    WINDOWS = "windows", "Windows"


class FirmwareChoice(models.TextChoices):
    """A template's firmware; OS_DEFAULT follows its OS family (Windows: UEFI with Secure Boot; Linux: BIOS)."""

    OS_DEFAULT = "", "The OS family's default"
    BIOS = "bios", "BIOS"
    UEFI = "uefi", "UEFI"
    UEFI_SECURE = "uefi-secure", "UEFI with Secure Boot"


class GpuKind(models.TextChoices):
    NONE = "none", "No GPU"
    PASSTHROUGH = "passthrough", "Whole GPU (PCI passthrough)"
    MDEV = "mdev", "Shared GPU (mediated device)"


class Visibility(models.TextChoices):
    PUBLIC = "public", "All tenants"
    TENANT = "tenant", "One tenant"


class LaunchKind(models.TextChoices):
    WARM = "warm", "Warm (pooled, already running)"
    COLD = "cold", "Cold (booted for this launch)"


class ReadySignal(models.TextChoices):
    SERIAL = "serial", "The guest's serial readiness line"
    AGENT = "agent", "The guest agent answered"
    SCREEN = "screen", "The screen settled"
    RESUMED = "resumed", "Resumed from memory"
    TIMEOUT = "timeout", "No signal before the time limit"
    SIMULATED = "simulated", "A simulated VM (libvirt's test driver): no guest to wait for"


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


# Named groups of desktop states, kept beside the choices (as NetBox keeps its *_STATE_CHOICES groups) so no
# caller retypes a set of states. Tuples, in choice order: they feed `state__in=` and model constraints.
# The VM may be using a host's CPU: these count against the running quotas.
ACTIVE_STATES = (DesktopState.STARTING, DesktopState.RUNNING, DesktopState.STOPPING, DesktopState.SUSPENDED)
# Only held while an operation moves the desktop; a failed operation parks such a desktop in error.
TRANSITIONAL_STATES = (
    DesktopState.REQUESTED,
    DesktopState.PROVISIONING,
    DesktopState.STARTING,
    DesktopState.STOPPING,
    DesktopState.DELETING,
)
# Powered on and settled: what a stop (or a pooled desktop's release) applies to.
STOPPABLE_STATES = (DesktopState.RUNNING, DesktopState.SUSPENDED)
# Powered off and settled: what the dashboards count as stopped.
AT_REST_STATES = (DesktopState.STOPPED, DesktopState.HIBERNATED)
# Settled with a VM defined: reconcile compares these with what the host shows.
SETTLED_STATES = (DesktopState.STOPPED, DesktopState.RUNNING, DesktopState.SUSPENDED, DesktopState.HIBERNATED)


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
    MIGRATE = "migrate", "Move to another host"
    RESIZE = "resize", "Resize"
    # Hot-plug the person's home disk into a warm pooled desktop they just claimed.
    ATTACH_HOME = "attach_home", "Attach home folder"


class OperationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


# An operation is queued or being carried out: at most one per desktop (a database constraint).
IN_FLIGHT_STATUSES = (OperationStatus.QUEUED, OperationStatus.RUNNING)
# An operation has ended, either way.
FINISHED_STATUSES = (OperationStatus.SUCCEEDED, OperationStatus.FAILED)


class HomeDiskState(models.TextChoices):
    CREATING = "creating", "Being created"
    READY = "ready", "Ready"
    ERROR = "error", "Error"


class FirewallAction(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"


class FirewallProtocol(models.TextChoices):
    ANY = "any", "Any"
    TCP = "tcp", "TCP"
    UDP = "udp", "UDP"
    ICMP = "icmp", "ICMP"


class KeyPurpose(models.TextChoices):
    DISK = "disk", "Desktop disk (LUKS passphrase)"
    RECORDING = "recording", "Console recordings of a tenant"
    HOME = "home", "A person's home disk (LUKS passphrase)"
