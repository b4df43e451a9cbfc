"""Fixed vocabularies of the desktops app."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class OsFamily(models.TextChoices):
    LINUX = "linux", _("Linux")
    WINDOWS = "windows", _("Windows")


class KeyboardLayout(models.TextChoices):
    """The keyboard layout a template's guest reads keys with: the automation API types text for it
    (hosts.hypervisor.layouts has a table for each)."""

    US = "us", _("English (US)")
    GB = "gb", _("English (UK)")
    DE = "de", _("German")
    FR = "fr", _("French")
    ES = "es", _("Spanish")
    IT = "it", _("Italian")
    CH = "ch", _("Swiss German")


class FirmwareChoice(models.TextChoices):
    """A template's firmware; OS_DEFAULT follows its OS family (Windows: UEFI with Secure Boot; Linux: BIOS)."""

    OS_DEFAULT = "", _("The OS family's default")
    BIOS = "bios", _("BIOS")
    UEFI = "uefi", _("UEFI")
    UEFI_SECURE = "uefi-secure", _("UEFI with Secure Boot")


class GpuKind(models.TextChoices):
    NONE = "none", _("No GPU")
    PASSTHROUGH = "passthrough", _("Whole GPU (PCI passthrough)")
    MDEV = "mdev", _("Shared GPU (mediated device)")


class Visibility(models.TextChoices):
    PUBLIC = "public", _("All tenants")
    TENANT = "tenant", _("One tenant")


class LaunchKind(models.TextChoices):
    WARM = "warm", _("Warm (pooled, already running)")
    COLD = "cold", _("Cold (booted for this launch)")


class ReadySignal(models.TextChoices):
    SERIAL = "serial", _("The guest's serial readiness line")
    AGENT = "agent", _("The guest agent answered")
    SCREEN = "screen", _("The screen settled")
    RESUMED = "resumed", _("Resumed from memory")
    TIMEOUT = "timeout", _("No signal before the time limit")
    SIMULATED = "simulated", _("A simulated VM (libvirt's test driver): no guest to wait for")


class DesktopState(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    PROVISIONING = "provisioning", _("Provisioning")
    STOPPED = "stopped", _("Stopped")
    STARTING = "starting", _("Starting")
    RUNNING = "running", _("Running")
    STOPPING = "stopping", _("Stopping")
    SUSPENDED = "suspended", _("Suspended")
    HIBERNATED = "hibernated", _("Hibernated")
    DELETING = "deleting", _("Deleting")
    DELETED = "deleted", _("Deleted")
    ERROR = "error", _("Error")


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
    PERSONAL = "personal", _("Personal")
    POOLED = "pooled", _("Pooled")


class OperationKind(models.TextChoices):
    CREATE = "create", _("Create")
    START = "start", _("Start")
    STOP = "stop", _("Stop")
    REBOOT = "reboot", _("Reboot")
    SUSPEND = "suspend", _("Suspend")
    RESUME = "resume", _("Resume")
    HIBERNATE = "hibernate", _("Hibernate")
    RESTORE = "restore", _("Restore")
    SNAPSHOT = "snapshot", _("Snapshot")
    REVERT = "revert", _("Revert")
    DELETE_SNAPSHOT = "delete_snapshot", _("Delete snapshot")
    DELETE = "delete", _("Delete")
    REBUILD = "rebuild", _("Rebuild")
    MIGRATE = "migrate", _("Move to another host")
    RESIZE = "resize", _("Resize")
    # Hot-plug the person's home disk into a warm pooled desktop they just claimed.
    ATTACH_HOME = "attach_home", _("Attach home folder")


class OperationStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


# An operation is queued or being carried out: at most one per desktop (a database constraint).
IN_FLIGHT_STATUSES = (OperationStatus.QUEUED, OperationStatus.RUNNING)
# An operation has ended, either way.
FINISHED_STATUSES = (OperationStatus.SUCCEEDED, OperationStatus.FAILED)


class HomeDiskState(models.TextChoices):
    CREATING = "creating", _("Being created")
    READY = "ready", _("Ready")
    ERROR = "error", _("Error")


class FirewallAction(models.TextChoices):
    ALLOW = "allow", _("Allow")
    DENY = "deny", _("Deny")


class FirewallProtocol(models.TextChoices):
    ANY = "any", _("Any")
    TCP = "tcp", _("TCP")
    UDP = "udp", _("UDP")
    ICMP = "icmp", _("ICMP")


class KeyPurpose(models.TextChoices):
    DISK = "disk", _("Desktop disk (LUKS passphrase)")
    RECORDING = "recording", _("Console recordings of a tenant")
    HOME = "home", _("A person's home disk (LUKS passphrase)")
