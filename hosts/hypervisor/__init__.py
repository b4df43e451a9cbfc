"""The hypervisor driver: typed domain specs, a Hypervisor protocol and its libvirt backend."""

from __future__ import annotations

from hosts.hypervisor.base import (
    ConsoleAddress,
    DomainInfo,
    DomainState,
    DomainStats,
    GuestMemory,
    HostInfo,
    Hypervisor,
    MdevType,
    MemoryFacts,
    MigrationStats,
    NodeStats,
    PciDevice,
    Screenshot,
    SnapshotInfo,
    detect_virt_type,
)
from hosts.hypervisor.domain import (
    DesktopMetadata,
    DiskSpec,
    DomainSpec,
    GraphicsSpec,
    HostdevSpec,
    InterfaceSpec,
    MdevSpec,
    SecretSpec,
    parse_desktop_metadata,
)
from hosts.hypervisor.errors import (
    AgentCommandFailed,
    AgentUnavailable,
    AlreadyExists,
    DomainNotFound,
    FilterNotFound,
    HostUnavailable,
    HypervisorError,
    InvalidDomainState,
    NetworkNotFound,
    NotSupported,
    OperationFailed,
    PoolNotFound,
    SnapshotNotFound,
    VolumeNotFound,
)
from hosts.hypervisor.network import DhcpHost, FilterParameterRef, FilterRule, NetworkSpec, NwFilterSpec
from hosts.hypervisor.platform import FIRMWARES, Firmware, PlatformSpec

__all__ = [
    "FIRMWARES",
    "AgentCommandFailed",
    "AgentUnavailable",
    "AlreadyExists",
    "ConsoleAddress",
    "DesktopMetadata",
    "DhcpHost",
    "DiskSpec",
    "DomainInfo",
    "DomainNotFound",
    "DomainSpec",
    "DomainState",
    "DomainStats",
    "FilterNotFound",
    "FilterParameterRef",
    "FilterRule",
    "Firmware",
    "GraphicsSpec",
    "GuestMemory",
    "HostInfo",
    "HostUnavailable",
    "HostdevSpec",
    "Hypervisor",
    "HypervisorError",
    "InterfaceSpec",
    "InvalidDomainState",
    "MdevSpec",
    "MdevType",
    "MemoryFacts",
    "MigrationStats",
    "NetworkNotFound",
    "NetworkSpec",
    "NodeStats",
    "NotSupported",
    "NwFilterSpec",
    "OperationFailed",
    "PciDevice",
    "PlatformSpec",
    "PoolNotFound",
    "Screenshot",
    "SecretSpec",
    "SnapshotInfo",
    "SnapshotNotFound",
    "VolumeNotFound",
    "detect_virt_type",
    "get_hypervisor",
    "open_hypervisor",
    "parse_desktop_metadata",
]


def get_hypervisor(uri: str) -> Hypervisor:
    """The process-wide cached hypervisor for a libvirt URI (imports libvirt on first use)."""
    # Imported here so the web tier can use specs and errors without loading libvirt.
    from hosts.hypervisor.libvirt_driver import get_hypervisor as _get_hypervisor

    return _get_hypervisor(uri)


def open_hypervisor(uri: str, *, open_timeout_s: float = 10.0) -> Hypervisor:
    """A private, uncached hypervisor for uri (checks of hosts not registered yet); close it after use."""
    from hosts.hypervisor.libvirt_driver import LibvirtHypervisor

    return LibvirtHypervisor(uri, open_timeout_s=open_timeout_s)
