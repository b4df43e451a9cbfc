"""The hypervisor driver: typed domain specs, a Hypervisor protocol and its libvirt backend."""

from __future__ import annotations

from hosts.hypervisor.base import (
    ConsoleAddress,
    DomainInfo,
    DomainState,
    DomainStats,
    HostInfo,
    Hypervisor,
    MdevType,
    NodeStats,
    PciDevice,
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
    parse_desktop_metadata,
)
from hosts.hypervisor.errors import (
    AlreadyExists,
    DomainNotFound,
    HostUnavailable,
    HypervisorError,
    InvalidDomainState,
    NotSupported,
    OperationFailed,
    PoolNotFound,
    SnapshotNotFound,
    VolumeNotFound,
)

__all__ = [
    "AlreadyExists",
    "ConsoleAddress",
    "DesktopMetadata",
    "DiskSpec",
    "DomainInfo",
    "DomainNotFound",
    "DomainSpec",
    "DomainState",
    "DomainStats",
    "GraphicsSpec",
    "HostInfo",
    "HostUnavailable",
    "HostdevSpec",
    "Hypervisor",
    "HypervisorError",
    "InterfaceSpec",
    "InvalidDomainState",
    "MdevSpec",
    "MdevType",
    "NodeStats",
    "NotSupported",
    "OperationFailed",
    "PciDevice",
    "PoolNotFound",
    "SnapshotInfo",
    "SnapshotNotFound",
    "VolumeNotFound",
    "detect_virt_type",
    "get_hypervisor",
    "parse_desktop_metadata",
]


def get_hypervisor(uri: str) -> Hypervisor:
    """The process-wide cached hypervisor for a libvirt URI (imports libvirt on first use)."""
    # Imported here so the web tier can use specs and errors without loading libvirt.
    from hosts.hypervisor.libvirt_driver import get_hypervisor as _get_hypervisor

    return _get_hypervisor(uri)
