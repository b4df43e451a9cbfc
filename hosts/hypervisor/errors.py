"""Hypervisor exceptions and the mapping from libvirt error codes to them."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from quetzal.errors import ServiceError

if TYPE_CHECKING:
    import libvirt

__all__ = [
    "AgentCommandFailed",
    "AgentUnavailable",
    "AlreadyExists",
    "DomainNotFound",
    "FilterNotFound",
    "HostUnavailable",
    "HypervisorError",
    "InvalidDomainState",
    "NetworkNotFound",
    "NotSupported",
    "OperationFailed",
    "PoolNotFound",
    "SnapshotNotFound",
    "VolumeNotFound",
    "from_libvirt_error",
    "is_connection_error",
]


class HypervisorError(Exception):
    """Base class of every error raised by hosts.hypervisor."""

    # Not a ClassVar: HostUnavailable is also a ServiceError, whose code an instance may set.
    code: str = "hypervisor_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, libvirt_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.libvirt_code = libvirt_code


class HostUnavailable(HypervisorError, ServiceError):
    """The host's libvirt did not answer (refused, lost, timed out): the only retryable error.

    One exception for the driver and the services alike: tasks retry it, and as a ServiceError the
    API, admin and commands answer it with its code and a 502 instead of an internal error.
    """

    code = "host_unavailable"
    status = 502
    retryable = True


class DomainNotFound(HypervisorError):
    """No domain with that name exists on the host."""

    code = "domain_not_found"


class VolumeNotFound(HypervisorError):
    """No storage volume with that name or path exists."""

    code = "volume_not_found"


class PoolNotFound(HypervisorError):
    """No storage pool with that name exists on the host."""

    code = "pool_not_found"


class SnapshotNotFound(HypervisorError):
    """The domain has no snapshot with that name."""

    code = "snapshot_not_found"


class NetworkNotFound(HypervisorError):
    """No libvirt network with that name exists on the host."""

    code = "network_not_found"


class FilterNotFound(HypervisorError):
    """No nwfilter with that name exists on the host."""

    code = "filter_not_found"


class InvalidDomainState(HypervisorError):
    """The domain is in a state that does not allow the operation."""

    code = "invalid_domain_state"


class AgentUnavailable(HypervisorError):
    """The guest agent does not answer (not configured, not running in the guest, or desynchronised)."""

    code = "agent_unavailable"


class AgentCommandFailed(AgentUnavailable):
    """The guest agent answered, refusing the command (e.g. guest-exec of a program the guest does not have).

    Still an AgentUnavailable, so callers that resync and retry on any agent failure (hosts.homefs.agent) go on
    doing so; exec tells it apart, as the caller's mistake rather than a missing agent.
    """

    code = "agent_command_failed"


class OperationFailed(HypervisorError):
    """libvirt refused or failed the operation for another reason."""

    code = "operation_failed"


class AlreadyExists(OperationFailed):
    """An object with that name already exists (volume, snapshot, domain with another UUID)."""

    code = "already_exists"


class NotSupported(OperationFailed):
    """The connection's driver does not implement the operation (e.g. streams on test://)."""

    code = "not_supported"


def _codes(*names: str) -> frozenset[int]:
    """Resolve libvirt constant names, skipping ones this libvirt build does not define."""
    import libvirt

    return frozenset(getattr(libvirt, n) for n in names if hasattr(libvirt, n))


def is_connection_error(exc: libvirt.libvirtError) -> bool:
    """Whether the error means the connection itself is broken (so reopening may help)."""
    import libvirt

    code = exc.get_error_code()
    if code in _codes(
        "VIR_ERR_NO_CONNECT",
        "VIR_ERR_INVALID_CONN",
        "VIR_ERR_RPC",
        "VIR_ERR_AUTH_FAILED",
        "VIR_ERR_AUTH_CANCELLED",
        "VIR_ERR_AUTH_UNAVAILABLE",
    ):
        return True
    # System and internal errors are connection errors only when the RPC layer raised them
    # (socket closed, keepalive timeout); from a storage driver they mean e.g. a missing file.
    transport = (libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC)
    return (
        code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_INTERNAL_ERROR) and exc.get_error_domain() in transport
    )


def from_libvirt_error(exc: libvirt.libvirtError) -> HypervisorError:
    """Translate a libvirtError into the matching HypervisorError (not raised, returned)."""
    import libvirt

    code = exc.get_error_code()
    message = str(exc.get_error_message() or exc)
    cls: type[HypervisorError]
    if is_connection_error(exc):
        cls = HostUnavailable
    elif code == libvirt.VIR_ERR_NO_DOMAIN:
        cls = DomainNotFound
    elif code == libvirt.VIR_ERR_NO_STORAGE_VOL:
        cls = VolumeNotFound
    elif code == libvirt.VIR_ERR_NO_STORAGE_POOL:
        cls = PoolNotFound
    elif code == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
        cls = SnapshotNotFound
    elif code == libvirt.VIR_ERR_NO_NETWORK:
        cls = NetworkNotFound
    elif code == libvirt.VIR_ERR_NO_NWFILTER:
        cls = FilterNotFound
    elif code == libvirt.VIR_ERR_OPERATION_INVALID:
        cls = InvalidDomainState
    elif code in _codes("VIR_ERR_STORAGE_VOL_EXIST", "VIR_ERR_DOM_EXIST", "VIR_ERR_NETWORK_EXIST"):
        cls = AlreadyExists
    elif code == libvirt.VIR_ERR_OPERATION_FAILED and "already exists" in message:
        # libvirt reports duplicate snapshots and volumes of some drivers this way only.
        cls = AlreadyExists
    elif code in _codes("VIR_ERR_AGENT_UNRESPONSIVE", "VIR_ERR_AGENT_COMMAND_TIMEOUT", "VIR_ERR_AGENT_UNSYNCED"):
        cls = AgentUnavailable
    elif code in _codes("VIR_ERR_NO_SUPPORT", "VIR_ERR_OPERATION_UNSUPPORTED"):
        cls = NotSupported
    else:
        cls = OperationFailed
    return cls(message, libvirt_code=code)
