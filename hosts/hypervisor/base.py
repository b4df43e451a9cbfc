"""The Hypervisor protocol and the plain result types its methods return."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from hosts.hypervisor.domain import DiskSpec, DomainSpec, InterfaceSpec
    from hosts.hypervisor.input import PointerEvent
    from hosts.hypervisor.network import DhcpHost, NetworkSpec, NwFilterSpec
    from hosts.hypervisor.platform import PlatformSupport

__all__ = [
    "ConsoleAddress",
    "DomainInfo",
    "DomainState",
    "DomainStats",
    "HostInfo",
    "Hypervisor",
    "MdevType",
    "PciDevice",
    "Screenshot",
    "SnapshotInfo",
    "detect_virt_type",
]


class DomainState(enum.StrEnum):
    """A domain's power state, folded from libvirt's virDomainState."""

    RUNNING = "running"
    PAUSED = "paused"
    SHUTOFF = "shutoff"
    CRASHED = "crashed"
    PMSUSPENDED = "pmsuspended"
    UNKNOWN = "unknown"

    @property
    def is_active(self) -> bool:
        """Whether a QEMU process exists for the domain (it holds memory and a console)."""
        return self in (DomainState.RUNNING, DomainState.PAUSED, DomainState.PMSUSPENDED)


@dataclass(frozen=True)
class PciDevice:
    """A host PCI device that could be passed through to a guest."""

    name: str
    domain: int
    bus: int
    slot: int
    function: int
    class_code: int
    vendor_id: int
    product_id: int
    vendor_name: str = ""
    product_name: str = ""
    driver: str | None = None

    @property
    def address(self) -> str:
        """The canonical PCI address, e.g. "0000:01:00.0"."""
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @property
    def is_display(self) -> bool:
        """Whether the device is a display controller (PCI class 0x03xxxx)."""
        return (self.class_code >> 16) == 0x03


@dataclass(frozen=True)
class MdevType:
    """A mediated device (vGPU) type offered by a parent PCI device."""

    type_id: str
    name: str
    device_api: str
    available_instances: int
    parent_address: str


@dataclass(frozen=True)
class HostInfo:
    """Facts about a hypervisor host, for capacity and placement."""

    hostname: str
    arch: str
    cpus: int
    memory_mib: int
    free_memory_mib: int
    virt_types: tuple[str, ...]
    libvirt_version: str
    hypervisor_type: str
    hypervisor_version: str
    gpus: tuple[PciDevice, ...] = ()
    mdev_types: tuple[MdevType, ...] = ()
    # What its QEMU offers Windows 11 guests (UEFI, Secure Boot, a TPM); None where the driver cannot tell.
    platform: PlatformSupport | None = None


@dataclass(frozen=True)
class DomainInfo:
    """One Quetzal domain on a host, as list_domains() reports it."""

    name: str
    uuid: str
    desktop_id: int
    state: DomainState
    tenant_slug: str | None = None
    # The installation that made it (DesktopMetadata.installation); None for domains made before that was kept.
    installation: str | None = None


@dataclass(frozen=True)
class MigrationStats:
    """What a finished live migration took (libvirt's completed-job statistics)."""

    downtime_ms: int
    elapsed_ms: int
    memory_bytes: int
    disk_bytes: int


@dataclass(frozen=True)
class DomainStats:
    """Counters of one Quetzal domain from a single bulk stats call."""

    name: str
    desktop_id: int
    cpu_time_ns: int = 0
    vcpus: int = 0
    memory_used_kib: int = 0
    memory_total_kib: int = 0
    disk_rd_bytes: int = 0
    disk_wr_bytes: int = 0
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    state: DomainState = DomainState.UNKNOWN


@dataclass(frozen=True)
class NodeStats:
    """The whole host's own figures (not only its desktops'): CPU counters, memory and storage pools."""

    cpu_busy_ns: int  # kernel + user time over all CPUs since boot
    cpu_total_ns: int  # busy + idle + iowait
    memory_total_mib: int
    memory_available_mib: int
    disk_total_bytes: int  # the active storage pools
    disk_used_bytes: int


@dataclass(frozen=True)
class GuestMemory:
    """What one running Quetzal guest uses of its host's memory, measured now."""

    desktop_id: int
    used_mib: int


@dataclass(frozen=True)
class MemoryFacts:
    """The host's memory as placement under overcommit needs it, from one look at the host.

    merged_mib and merging are None where the host has no KSM (or libvirt cannot say: its test driver).
    """

    available_mib: int  # free + buffers + page cache
    guests: tuple[GuestMemory, ...] = ()
    merged_mib: int | None = None  # memory KSM saves: pages_sharing pages
    merging: bool | None = None  # KSM is merging (pages shared, or it has scanned)


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot of a domain."""

    name: str
    created_at: int
    state: DomainState
    current: bool
    description: str | None = None


@dataclass(frozen=True)
class ConsoleAddress:
    """Where a domain's VNC server listens."""

    host: str
    port: int


@dataclass(frozen=True)
class Screenshot:
    """A running domain's screen as the host dumped it (PNG or PPM, as mime says)."""

    data: bytes
    mime: str


def detect_virt_type(host_info: HostInfo) -> Literal["kvm", "qemu"]:
    """KVM when the host advertises it, else TCG; callers still allow a per-host override."""
    # libvirt lists kvm whenever /dev/kvm opens, even inside a VM whose nested virtualisation
    # hangs guests at boot, so this is only a default that an operator can override.
    return virt_type_of(host_info.virt_types)


def virt_type_of(virt_types: Sequence[str]) -> Literal["kvm", "qemu"]:
    return "kvm" if "kvm" in virt_types else "qemu"


@runtime_checkable
class Hypervisor(Protocol):
    """What the rest of Quetzal may ask of a hypervisor host."""

    uri: str

    def host_info(self) -> HostInfo:
        """Host facts: CPUs, memory, virt types, passthrough GPUs."""
        ...

    def list_domains(self) -> list[DomainInfo]:
        """Every domain carrying Quetzal metadata, running or not."""
        ...

    def define(self, spec: DomainSpec) -> DomainInfo:
        """Create or update the persistent domain described by spec."""
        ...

    @property
    def supports_disk_encryption(self) -> bool:
        """Whether this host can keep desktop disks as LUKS overlays (and takes secrets at start)."""
        ...

    def start(self, name: str, secrets: Mapping[str, bytes] | None = None) -> None:
        """Make the domain run (restoring a managed save); already running is success.

        secrets maps libvirt secret UUIDs to disk passphrases, defined only while QEMU starts.
        """
        ...

    def shutdown(self, name: str, timeout_s: float = 60.0) -> bool:
        """ACPI shutdown, destroy after timeout_s; True if the guest stopped by itself."""
        ...

    def destroy(self, name: str) -> None:
        """Power off at once; already off is success."""
        ...

    def reboot(self, name: str) -> None:
        """Ask the running guest to reboot."""
        ...

    def suspend(self, name: str) -> None:
        """Pause the vCPUs; already paused is success."""
        ...

    def resume(self, name: str) -> None:
        """Unpause the vCPUs; already running is success."""
        ...

    def managed_save(self, name: str) -> None:
        """Save memory to disk and stop; the next start restores it."""
        ...

    def has_managed_save(self, name: str) -> bool:
        """Whether a managed save image exists for the domain."""
        ...

    def snapshot_create(self, name: str, snap_name: str, description: str | None = None) -> None:
        """Take a snapshot named snap_name."""
        ...

    def snapshot_list(self, name: str) -> list[SnapshotInfo]:
        """The domain's snapshots, oldest first."""
        ...

    def snapshot_revert(self, name: str, snap_name: str, secrets: Mapping[str, bytes] | None = None) -> None:
        """Revert the domain to a snapshot (secrets as for start: a memory snapshot starts QEMU)."""
        ...

    def snapshot_delete(self, name: str, snap_name: str) -> None:
        """Delete a snapshot; a missing snapshot is success."""
        ...

    def undefine(self, name: str) -> None:
        """Stop and remove the domain with its save image and snapshot metadata."""
        ...

    def state(self, name: str) -> DomainState:
        """The domain's current power state."""
        ...

    def all_domain_stats(self) -> list[DomainStats]:
        """Counters of every Quetzal domain in one call to the host."""
        ...

    def node_stats(self) -> NodeStats:
        """The host's own CPU counters, memory and storage use (everything on it, not only desktops)."""
        ...

    def memory_facts(self) -> MemoryFacts:
        """Available memory, merged pages (KSM) and what each running Quetzal guest measures."""
        ...

    def console_address(self, name: str) -> ConsoleAddress:
        """Host and port of the running domain's VNC server."""
        ...

    def screenshot(self, name: str) -> Screenshot:
        """The running domain's first screen, as an image."""
        ...

    def send_keys(self, name: str, codes: Sequence[int], hold_ms: int = 30) -> None:
        """Press these Linux key codes together (in order), hold them, release them."""
        ...

    def send_pointer(self, name: str, steps: Sequence[PointerEvent], width: int, height: int) -> None:
        """Pointer moves and button presses at pixel coordinates of a width x height screen, step by step."""
        ...

    def platform_support(self, virt_type: str = "kvm") -> PlatformSupport:
        """What the host offers guests of Windows 11's kind: UEFI, Secure Boot, an emulated TPM."""
        ...

    def agent_ping(self, name: str, timeout_s: int = 1) -> bool:
        """Whether the guest agent answers now."""
        ...

    def disk_serials(self, name: str) -> list[str]:
        """Serials of the disks the running domain has now."""
        ...

    def attach_disk(self, name: str, disk: DiskSpec, secrets: Mapping[str, bytes] | None = None) -> None:
        """Hot-plug a disk (with a serial) into the running domain; already attached is success.

        secrets (libvirt secret UUID -> passphrase of an encrypted disk) exist only while QEMU opens it.
        """
        ...

    def detach_disk(self, name: str, serial: str, timeout_s: float = 10.0) -> bool:
        """Unplug the disk with this serial; True when it is gone."""
        ...

    def agent_command(self, name: str, command: dict, timeout_s: int = 10) -> object:
        """One qemu-guest-agent command; its "return" value."""
        ...

    def pool_path(self, pool: str) -> str:
        """The target directory of a storage pool."""
        ...

    def pool_free_bytes(self, pool: str) -> int:
        """Bytes still free in a storage pool."""
        ...

    def migrate(
        self,
        name: str,
        dest_uri: str,
        *,
        migrate_address: str,
        console_address: str,
        interfaces: Sequence[InterfaceSpec] = (),
        secrets: Mapping[str, bytes] | None = None,
        copy_storage: bool = True,
        auto_converge: bool = True,
        timeout_s: float = 600.0,
    ) -> MigrationStats:
        """Live-migrate a running domain to another host (persistent there, undefined here).

        interfaces: the NICs (by MAC) as they are on the destination's networks; secrets: the disk
        keys the destination's QEMU needs, defined there only while the move runs.
        """
        ...

    def volume_create(self, pool: str, name: str, capacity_bytes: int, fmt: str = "qcow2") -> str:
        """Create an empty volume; returns its path."""
        ...

    def volume_create_linked_clone(
        self,
        pool: str,
        name: str,
        backing_path: str,
        backing_format: str = "qcow2",
        capacity_bytes: int | None = None,
    ) -> str:
        """Create a qcow2 overlay on backing_path; returns its path."""
        ...

    def volume_delete(self, pool: str, name: str) -> None:
        """Delete a volume; a missing volume is success."""
        ...

    def encrypted_disk_create(
        self, pool: str, name: str, passphrase: bytes, *, backing_path: str, backing_format: str, capacity_bytes: int
    ) -> str:
        """A new empty LUKS qcow2 overlay (its own master key) on backing_path; returns its path."""
        ...

    def encrypted_disk_from_spare(self, pool: str, name: str, spare_path: str) -> str:
        """Rename a ready spare overlay to the named disk; returns its path."""
        ...

    def encrypted_disk_grow(
        self, name: str, path: str, passphrase: bytes, capacity_bytes: int, target_dev: str = "vda"
    ) -> bool:
        """Grow a domain's LUKS overlay (live through QEMU, else with its key); returns whether live."""
        ...

    def encrypted_file_delete(self, path: str) -> None:
        """Delete an encrypted disk or spare made outside libvirt; missing is success."""
        ...

    def volume_exists(self, pool: str, name: str) -> bool:
        """Whether the pool has a volume of that name."""
        ...

    def volume_capacity(self, pool: str, name: str) -> int:
        """The volume's virtual size in bytes."""
        ...

    def disk_grow(self, name: str, pool: str, volume: str, capacity_bytes: int, target_dev: str = "vda") -> bool:
        """Grow the domain's disk (live when it runs); shrinking is refused; whether it was live."""
        ...

    def volume_upload(self, pool: str, name: str, src_path: str, fmt: str = "qcow2") -> str:
        """Create a volume from a local file over the libvirt connection; returns its path."""
        ...

    def volume_download(self, pool: str, name: str, dest_path: str) -> None:
        """Copy a volume's bytes to a local file over the libvirt connection."""
        ...

    def volume_path(self, pool: str, name: str) -> str:
        """The path of a volume on the host."""
        ...

    def interface_set_isolated(self, name: str, mac: str, isolated: bool) -> bool:
        """Switch port isolation of the domain's NIC with that MAC, live and in its config; True if it changed."""
        ...

    def network_ensure(self, spec: NetworkSpec) -> None:
        """Define, start and autostart the network; align its static DHCP leases live."""
        ...

    def network_remove(self, name: str) -> None:
        """Stop and undefine the network; a missing one is success."""
        ...

    def network_subnets(self) -> tuple[tuple[str, str], ...]:
        """(name, CIDR) of the IPv4 subnets of every network defined on the host, Quetzal's or not."""
        ...

    def network_dhcp_hosts(self, name: str) -> tuple[DhcpHost, ...] | None:
        """The network's static leases, or None when it does not exist."""
        ...

    @property
    def supports_nwfilter(self) -> bool:
        """Whether the host can filter guest traffic (libvirt's test driver cannot)."""
        ...

    def nwfilter_define(self, spec: NwFilterSpec) -> None:
        """Create or replace a filter; running guests using it get the new rules live."""
        ...

    def nwfilter_exists(self, name: str) -> bool:
        """Whether a filter of that name is defined."""
        ...

    def nwfilter_remove(self, name: str) -> None:
        """Undefine a filter; a missing one is success."""
        ...

    def close(self) -> None:
        """Close the connection (the next call reopens it)."""
        ...
