"""The libvirt implementation of the Hypervisor protocol (the only code that imports libvirt)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

import libvirt
from lxml import etree

from hosts.hypervisor import libvirt_network as networks
from hosts.hypervisor import libvirt_screen as screen
from hosts.hypervisor import libvirt_storage as storage
from hosts.hypervisor import libvirt_vdagent as vdagent
from hosts.hypervisor import qemu_img
from hosts.hypervisor.base import (
    ConsoleAddress,
    DomainInfo,
    DomainState,
    DomainStats,
    GuestMemory,
    HostInfo,
    MdevType,
    MemoryFacts,
    MigrationStats,
    NodeStats,
    PciDevice,
    Screenshot,
    SnapshotInfo,
    detect_virt_type,
    virt_type_of,
)
from hosts.hypervisor.domain import (
    DESKTOP_XMLNS,
    DesktopMetadata,
    DiskSpec,
    DomainSpec,
    InterfaceSpec,
    SecretSpec,
    parse_metadata,
    parse_xml,
)
from hosts.hypervisor.errors import (
    AgentCommandFailed,
    AgentUnavailable,
    DomainNotFound,
    InvalidDomainState,
    OperationFailed,
    SnapshotNotFound,
    VolumeNotFound,
    is_connection_error,
)
from hosts.hypervisor.host_shell import HostShell, shell_for
from hosts.hypervisor.input import PointerEvent
from hosts.hypervisor.libvirt_conn import LibvirtConnection
from hosts.hypervisor.network import DhcpHost, NetworkSpec, NwFilterSpec
from hosts.hypervisor.parsing import (
    domain_state,
    format_version,
    guest_memory_mib,
    ksm_facts,
    parse_pci_device,
    parse_snapshot,
    parse_virt_types,
    parse_vnc_listen,
    retarget_interfaces,
    retarget_vnc_listen,
    stats_from_record,
)
from hosts.hypervisor.platform import PlatformSupport, parse_platform_support

__all__ = ["LibvirtHypervisor", "detect_virt_type", "forget_hypervisors", "get_hypervisor"]

T = TypeVar("T")

_STATS_FLAGS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
# A domain whose QEMU monitor is busy (migration, stuck I/O) must not stall a whole host's
# listing or metrics: NOWAIT skips the stats it cannot read at once.
_STATS_NOWAIT = getattr(libvirt, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT", 0)
_UNDEFINE_BASIC = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
_UNDEFINE_FULL = (
    _UNDEFINE_BASIC
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | getattr(libvirt, "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", 0)
)
# Errors meaning "this driver does not take these flags"; undefine then retries with fewer.
_FLAG_REJECTIONS = frozenset(
    getattr(libvirt, n)
    for n in ("VIR_ERR_INVALID_ARG", "VIR_ERR_NO_SUPPORT", "VIR_ERR_ARGUMENT_UNSUPPORTED")
    if hasattr(libvirt, n)
)
_WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::", "[::]"})
_DESTROY_ATTEMPTS = 3


def _state(dom: libvirt.virDomain) -> DomainState:
    """The domain's folded state (one RPC)."""
    return domain_state(dom.state(0)[0])


def _tolerate(action: Callable[[], object], done: Callable[[], bool]) -> None:
    """Run action; if it fails but done() now holds (a race, "already" errors), that is success."""
    try:
        action()
    except libvirt.libvirtError as exc:
        # Drivers disagree on how they report "already running" (QEMU: OPERATION_INVALID,
        # test: INTERNAL_ERROR), so ask the domain instead of parsing messages.
        if is_connection_error(exc):
            raise
        try:
            finished = done()
        except libvirt.libvirtError:
            finished = False
        if not finished:
            raise


def _abort_job(dom: libvirt.virDomain) -> None:
    """Abort a domain's running job (a migration past its deadline); nothing running is fine."""
    with contextlib.suppress(libvirt.libvirtError):
        dom.abortJob()


@contextlib.contextmanager
def _ephemeral_secrets(conn: libvirt.virConnect, secrets: Mapping[str, bytes]) -> Iterator[None]:
    """Define each secret (UUID -> value) for as long as the block runs, then undefine it.

    QEMU receives the value when it starts and keeps it in memory, so once the domain runs nothing
    of the key is left in libvirt; a crash before the undefine leaves an ephemeral secret only in
    libvirtd's memory, and the next start with the same UUID replaces it.
    """
    defined: list[libvirt.virSecret] = []
    try:
        for uuid, value in secrets.items():
            secret = conn.secretDefineXML(SecretSpec(uuid=uuid, description="quetzal disk key").to_xml(), 0)
            defined.append(secret)
            secret.setValue(value, 0)
        yield
    finally:
        for secret in defined:
            with contextlib.suppress(libvirt.libvirtError):
                secret.undefine()


def _invalid_state(name: str, state: DomainState, action: str) -> InvalidDomainState:
    """The error for an action the domain's state forbids."""
    return InvalidDomainState(f"domain {name!r} is {state.value}; cannot {action}")


class LibvirtHypervisor:
    """A libvirt host reached through one cached, self-healing connection."""

    def __init__(
        self,
        uri: str,
        *,
        keepalive_interval_s: int = 5,
        keepalive_count: int = 3,
        open_timeout_s: float = 10.0,
        poll_interval_s: float = 0.5,
        shell: HostShell | None = None,
    ) -> None:
        self.uri = uri
        # How qemu-img and file moves reach the host's disks; None: they cannot (no encrypted disks here).
        self.shell = shell if shell is not None else shell_for(uri)
        self.poll_interval_s = poll_interval_s
        self.connection = LibvirtConnection(
            uri,
            keepalive_interval_s=keepalive_interval_s,
            keepalive_count=keepalive_count,
            open_timeout_s=open_timeout_s,
        )
        # Domain UUID -> our metadata (None: not ours), so bulk calls stay one RPC per host.
        self._metadata_cache: dict[str, DesktopMetadata | None] = {}
        self._metadata_lock = threading.Lock()
        self._nwfilter: bool | None = None

    def __repr__(self) -> str:
        return f"LibvirtHypervisor({self.uri!r})"

    def close(self) -> None:
        """Close the connection (the next call reopens it)."""
        self.connection.close()

    def _run(self, fn: Callable[[libvirt.virConnect], T], *, retry: bool = True) -> T:
        """Run fn on the live connection with error translation and one reconnect."""
        return self.connection.run(fn, retry=retry)

    def _on_domain(self, name: str, fn: Callable[[libvirt.virDomain], T], *, retry: bool = True) -> T:
        """Look the domain up by name and run fn on it."""
        return self._run(lambda conn: fn(conn.lookupByName(name)), retry=retry)

    # Host

    def platform_support(self, virt_type: str = "kvm") -> PlatformSupport:
        """Whether this host's QEMU offers UEFI with Secure Boot and an emulated TPM (NotSupported: cannot tell)."""
        return self._run(lambda conn: self._domain_platform(conn, virt_type))

    def host_info(self) -> HostInfo:
        """Host facts: CPUs, memory, virt types, passthrough GPUs and vGPU types."""

        def fn(conn: libvirt.virConnect) -> HostInfo:
            model, node_memory_mib, cpus, *_ = conn.getInfo()
            memory_mib, free_memory_mib = self._memory_mib(conn, node_memory_mib)
            gpus, mdev_types = self._display_devices(conn)
            virt_types = parse_virt_types(conn.getCapabilities())
            return HostInfo(
                hostname=conn.getHostname(),
                arch=model,
                cpus=cpus,
                memory_mib=memory_mib,
                free_memory_mib=free_memory_mib,
                virt_types=virt_types,
                libvirt_version=format_version(conn.getLibVersion()),
                hypervisor_type=conn.getType().lower(),
                hypervisor_version=format_version(conn.getVersion()),
                gpus=gpus,
                mdev_types=mdev_types,
                platform=self._platform(conn, virt_type_of(virt_types)),
            )

        return self._run(fn)

    @staticmethod
    def _domain_platform(conn: libvirt.virConnect, virt_type: str) -> PlatformSupport:
        """UEFI, Secure Boot and TPM support from libvirt's domain capabilities for a q35 guest of this virt type."""
        return parse_platform_support(conn.getDomainCapabilities(None, "x86_64", "q35", virt_type, 0))

    @staticmethod
    def _platform(conn: libvirt.virConnect, virt_type: str) -> PlatformSupport | None:
        """What the host's QEMU offers guests, for the scheduler; None from a driver with no domain capabilities."""
        try:
            return LibvirtHypervisor._domain_platform(conn, virt_type)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            return None

    @staticmethod
    def _memory_mib(conn: libvirt.virConnect, node_memory_mib: int) -> tuple[int, int]:
        """Total and available memory: free plus reclaimable page cache, from one source."""
        try:
            stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            return node_memory_mib, conn.getFreeMemory() // (1024 * 1024)
        # /proc/meminfo figures; on some VMs the NUMA totals getInfo uses cover only part of
        # RAM, and mixing the two sources made "free" exceed "total".
        total = int(stats.get("total", node_memory_mib * 1024)) // 1024
        available = sum(int(stats.get(k, 0)) for k in ("free", "buffers", "cached")) // 1024
        return total, min(available, total)

    @staticmethod
    def _display_devices(
        conn: libvirt.virConnect,
    ) -> tuple[tuple[PciDevice, ...], tuple[MdevType, ...]]:
        """PCI display controllers and the mdev types they offer."""
        try:
            devices = conn.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            return (), ()
        gpus: list[PciDevice] = []
        mdev_types: list[MdevType] = []
        for dev in devices:
            parsed = parse_pci_device(dev.XMLDesc(0))
            if parsed is None or not parsed[0].is_display:
                continue
            gpus.append(parsed[0])
            mdev_types.extend(parsed[1])
        gpus.sort(key=lambda d: d.address)
        return tuple(gpus), tuple(mdev_types)

    # Metadata cache

    def _metadata(self, dom: libvirt.virDomain) -> DesktopMetadata | None:
        """Our metadata of dom, from the cache or one metadata RPC."""
        uuid = dom.UUIDString()
        with self._metadata_lock:
            if uuid in self._metadata_cache:
                return self._metadata_cache[uuid]
        try:
            xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, DESKTOP_XMLNS, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None  # undefined while we listed; do not cache
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                raise
            meta = None
        else:
            meta = parse_metadata(xml)
        self._remember(uuid, meta)
        return meta

    def _remember(self, uuid: str, meta: DesktopMetadata | None) -> None:
        """Cache a domain's metadata."""
        with self._metadata_lock:
            self._metadata_cache[uuid] = meta

    def _forget(self, uuid: str) -> None:
        """Drop a domain from the metadata cache."""
        with self._metadata_lock:
            self._metadata_cache.pop(uuid, None)

    def _prune(self, seen: Iterable[str]) -> None:
        """Keep only UUIDs that a full listing still returned."""
        keep = set(seen)
        with self._metadata_lock:
            for uuid in [u for u in self._metadata_cache if u not in keep]:
                del self._metadata_cache[uuid]

    def _ours(
        self, records: list[tuple[libvirt.virDomain, dict[str, object]]]
    ) -> list[tuple[libvirt.virDomain, DesktopMetadata, dict[str, object]]]:
        """The stats records of domains carrying our metadata."""
        out = []
        for dom, record in records:
            meta = self._metadata(dom)
            if meta is not None:
                out.append((dom, meta, record))
        self._prune(dom.UUIDString() for dom, _ in records)
        return out

    # Domains

    def list_domains(self) -> list[DomainInfo]:
        """Every domain carrying Quetzal metadata, running or not, sorted by name."""

        def fn(conn: libvirt.virConnect) -> list[DomainInfo]:
            records = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, _STATS_NOWAIT)
            return [
                DomainInfo(
                    name=dom.name(),
                    uuid=dom.UUIDString(),
                    desktop_id=meta.desktop_id,
                    state=domain_state(int(str(record.get("state.state", 0)))),
                    tenant_slug=meta.tenant_slug,
                    installation=meta.installation,
                )
                for dom, meta, record in self._ours(records)
            ]

        return sorted(self._run(fn), key=lambda d: d.name)

    def define(self, spec: DomainSpec) -> DomainInfo:
        """Create the persistent domain, or update it when the name already exists."""
        xml = spec.to_xml()

        def fn(conn: libvirt.virConnect) -> DomainInfo:
            dom = conn.defineXML(xml)
            self._remember(dom.UUIDString(), spec.metadata)
            return DomainInfo(
                name=dom.name(),
                uuid=dom.UUIDString(),
                desktop_id=spec.desktop_id,
                state=_state(dom),
                tenant_slug=spec.tenant_slug,
                installation=spec.installation,
            )

        return self._run(fn)

    def state(self, name: str) -> DomainState:
        """The domain's current power state."""
        return self._on_domain(name, _state)

    @property
    def supports_disk_encryption(self) -> bool:
        """Whether disks here can be LUKS overlays: qemu-img must run on the host (local, or through its shell)."""
        return self.shell is not None

    def _host_shell(self) -> HostShell:
        if self.shell is None:
            raise OperationFailed(f"{self.uri} has no host shell: encrypted disks need qemu-img on the host")
        return self.shell

    def start(self, name: str, secrets: Mapping[str, bytes] | None = None) -> None:
        """Make the domain run; restores a managed save; running already is success.

        secrets (libvirt secret UUID -> disk passphrase) exist only while QEMU starts.
        """

        def fn(conn: libvirt.virConnect) -> None:
            dom = conn.lookupByName(name)
            if _state(dom) is DomainState.RUNNING:
                return
            with _ephemeral_secrets(conn, secrets or {}):
                self._start_domain(dom)
            # A VM restored from a save was saved without its clipboard channel (libvirt_vdagent.py).
            vdagent.plug_back(dom)

        self._run(fn)

    @staticmethod
    def _start_domain(dom: libvirt.virDomain) -> None:
        """Run, resume or wake the domain, whichever its state asks for."""
        state = _state(dom)
        running = lambda: _state(dom) is DomainState.RUNNING  # noqa: E731
        if state is DomainState.RUNNING:
            return
        if state is DomainState.PAUSED:
            _tolerate(dom.resume, running)
        elif state is DomainState.PMSUSPENDED:
            _tolerate(lambda: dom.pMWakeup(0), running)
        else:
            # virDomainCreate restores the managed save image when there is one.
            _tolerate(dom.create, running)

    def _destroy(self, dom: libvirt.virDomain) -> None:
        """Power off now, retrying while QEMU is slow to die (e.g. flushing to a busy disk)."""
        for attempt in range(_DESTROY_ATTEMPTS):
            if not dom.isActive():
                return
            try:
                _tolerate(dom.destroy, lambda: not dom.isActive())
                return
            except libvirt.libvirtError as exc:
                if is_connection_error(exc) or attempt == _DESTROY_ATTEMPTS - 1:
                    raise
                time.sleep(self.poll_interval_s)

    def destroy(self, name: str) -> None:
        """Power off at once; already off is success."""
        self._on_domain(name, self._destroy)

    def shutdown(self, name: str, timeout_s: float = 60.0) -> bool:
        """ACPI shutdown, destroy after timeout_s; True if the guest stopped by itself."""

        def fn(dom: libvirt.virDomain) -> bool:
            if not dom.isActive():
                return True
            state = _state(dom)
            if state is DomainState.PAUSED:
                # A paused guest cannot see the ACPI button; let it run to handle it.
                _tolerate(dom.resume, lambda: _state(dom) is not DomainState.PAUSED)
                state = _state(dom)
            if state is DomainState.RUNNING:
                requested = True
                try:
                    dom.shutdown()
                except libvirt.libvirtError as exc:
                    if is_connection_error(exc):
                        raise
                    if not dom.isActive():
                        return True
                    requested = False  # nothing to wait for
                deadline = time.monotonic() + (timeout_s if requested else 0)
                while True:
                    if not dom.isActive():
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    time.sleep(min(self.poll_interval_s, remaining))
            self._destroy(dom)
            return False

        return self._on_domain(name, fn)

    def reboot(self, name: str) -> None:
        """Ask the running guest to reboot (ACPI or guest agent, as libvirt chooses)."""

        def fn(dom: libvirt.virDomain) -> None:
            state = _state(dom)
            if state is not DomainState.RUNNING:
                raise _invalid_state(name, state, "reboot")
            dom.reboot(0)

        self._on_domain(name, fn)

    def suspend(self, name: str) -> None:
        """Pause the vCPUs; already paused is success."""

        def fn(dom: libvirt.virDomain) -> None:
            state = _state(dom)
            if state is DomainState.PAUSED:
                return
            if state is not DomainState.RUNNING:
                raise _invalid_state(name, state, "suspend")
            _tolerate(dom.suspend, lambda: _state(dom) is DomainState.PAUSED)

        self._on_domain(name, fn)

    def resume(self, name: str) -> None:
        """Unpause the vCPUs; already running is success."""

        def fn(dom: libvirt.virDomain) -> None:
            state = _state(dom)
            if state is DomainState.RUNNING:
                return
            if state is not DomainState.PAUSED:
                raise _invalid_state(name, state, "resume")
            _tolerate(dom.resume, lambda: _state(dom) is DomainState.RUNNING)

        self._on_domain(name, fn)

    def managed_save(self, name: str) -> None:
        """Save memory to disk and stop; already saved and off is success."""

        def saved(dom: libvirt.virDomain) -> bool:
            return not dom.isActive() and bool(dom.hasManagedSaveImage(0))

        def fn(dom: libvirt.virDomain) -> None:
            if not dom.isActive():
                if dom.hasManagedSaveImage(0):
                    return
                raise _invalid_state(name, _state(dom), "save")
            with vdagent.unplugged(dom):
                _tolerate(lambda: dom.managedSave(0), lambda: saved(dom))

        self._on_domain(name, fn)

    def has_managed_save(self, name: str) -> bool:
        """Whether a managed save image exists for the domain."""
        return self._on_domain(name, lambda dom: bool(dom.hasManagedSaveImage(0)))

    def undefine(self, name: str) -> None:
        """Stop and remove the domain, its save image, snapshot metadata and NVRAM."""

        def fn(dom: libvirt.virDomain) -> None:
            uuid = dom.UUIDString()
            self._destroy(dom)
            for flags in (_UNDEFINE_FULL, _UNDEFINE_BASIC):
                try:
                    dom.undefineFlags(flags)
                    break
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        break
                    # Older or simpler drivers reject NVRAM/checkpoint flags they lack.
                    if exc.get_error_code() not in _FLAG_REJECTIONS or flags == _UNDEFINE_BASIC:
                        raise
            self._forget(uuid)

        try:
            self._on_domain(name, fn)
        except DomainNotFound:
            return

    # Snapshots

    def snapshot_create(self, name: str, snap_name: str, description: str | None = None) -> None:
        """Take a snapshot; AlreadyExists if the name is taken."""
        root = etree.Element("domainsnapshot")
        etree.SubElement(root, "name").text = snap_name
        if description is not None:
            etree.SubElement(root, "description").text = description
        xml = etree.tostring(root, encoding="unicode")

        def fn(dom: libvirt.virDomain) -> None:
            # A running VM's snapshot holds its memory: a save, which the clipboard channel may block.
            with vdagent.unplugged(dom):
                dom.snapshotCreateXML(xml, 0)

        # No blind retry: after a dropped connection the snapshot may already exist.
        self._on_domain(name, fn, retry=False)

    def snapshot_list(self, name: str) -> list[SnapshotInfo]:
        """The domain's snapshots, oldest first."""

        def fn(dom: libvirt.virDomain) -> list[SnapshotInfo]:
            return [
                parse_snapshot(snap.getXMLDesc(0), current=bool(snap.isCurrent(0))) for snap in dom.listAllSnapshots(0)
            ]

        return sorted(self._on_domain(name, fn), key=lambda s: (s.created_at, s.name))

    def snapshot_revert(self, name: str, snap_name: str, secrets: Mapping[str, bytes] | None = None) -> None:
        """Revert the domain to a snapshot (its disks, and memory if it has any, which starts QEMU)."""

        def fn(conn: libvirt.virConnect) -> None:
            dom = conn.lookupByName(name)
            with _ephemeral_secrets(conn, secrets or {}):
                dom.revertToSnapshot(dom.snapshotLookupByName(snap_name, 0), 0)
            vdagent.plug_back(dom)

        self._run(fn)

    def snapshot_delete(self, name: str, snap_name: str) -> None:
        """Delete a snapshot; a missing snapshot is success."""
        try:
            self._on_domain(name, lambda dom: dom.snapshotLookupByName(snap_name, 0).delete(0))
        except SnapshotNotFound:
            return

    # Monitoring and console

    def all_domain_stats(self) -> list[DomainStats]:
        """Counters of every Quetzal domain from one getAllDomainStats call, sorted by name."""

        def fn(conn: libvirt.virConnect) -> list[DomainStats]:
            records = conn.getAllDomainStats(_STATS_FLAGS, _STATS_NOWAIT)
            return [stats_from_record(dom.name(), meta.desktop_id, record) for dom, meta, record in self._ours(records)]

        return sorted(self._run(fn), key=lambda s: s.name)

    def node_stats(self) -> NodeStats:
        """The host's CPU time counters, memory and active storage pools, from libvirt's node calls."""

        def fn(conn: libvirt.virConnect) -> NodeStats:
            cpu = conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
            busy = int(cpu.get("kernel", 0)) + int(cpu.get("user", 0))
            total = busy + int(cpu.get("idle", 0)) + int(cpu.get("iowait", 0))
            memory_mib, available_mib = self._memory_mib(conn, conn.getInfo()[1])
            disk_total = disk_used = 0
            for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
                _, capacity, allocation, _available = pool.info()
                disk_total += int(capacity)
                disk_used += int(allocation)
            return NodeStats(
                cpu_busy_ns=busy,
                cpu_total_ns=total,
                memory_total_mib=memory_mib,
                memory_available_mib=available_mib,
                disk_total_bytes=disk_total,
                disk_used_bytes=disk_used,
            )

        return self._run(fn)

    def memory_facts(self) -> MemoryFacts:
        """Available memory, what KSM merges (where the host has it) and each running guest's measured memory."""

        def fn(conn: libvirt.virConnect) -> MemoryFacts:
            _, available_mib = self._memory_mib(conn, conn.getInfo()[1])
            try:
                merged_mib, merging = ksm_facts(conn.getMemoryParameters(0))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
                merged_mib, merging = None, None  # no KSM here, or a driver that cannot say
            records = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, _STATS_NOWAIT)
            guests = []
            for dom, meta, record in self._ours(records):
                if domain_state(int(str(record.get("state.state", 0)))) != DomainState.RUNNING:
                    continue
                try:
                    used_mib = guest_memory_mib(dom.memoryStats())
                except libvirt.libvirtError:
                    continue  # gone or busy since the listing: counted at its allocation until next time
                if used_mib is not None:
                    guests.append(GuestMemory(desktop_id=meta.desktop_id, used_mib=used_mib))
            return MemoryFacts(
                available_mib=available_mib,
                guests=tuple(sorted(guests, key=lambda g: g.desktop_id)),
                merged_mib=merged_mib,
                merging=merging,
            )

        return self._run(fn)

    def console_address(self, name: str) -> ConsoleAddress:
        """Host and port of the running domain's VNC server."""

        def fn(dom: libvirt.virDomain) -> ConsoleAddress:
            if not dom.isActive():
                raise _invalid_state(name, _state(dom), "open a console")
            host, port = parse_vnc_listen(dom.XMLDesc(0))
            if port is None:
                raise OperationFailed(f"domain {name!r} has no VNC port allocated")
            if host is None or host in _WILDCARD_ADDRESSES:
                host = self._uri_host()
            return ConsoleAddress(host=host, port=port)

        return self._on_domain(name, fn)

    def agent_ping(self, name: str, timeout_s: int = 1) -> bool:
        """Whether the guest agent answers now (False when there is none or it is not up yet)."""
        import libvirt_qemu  # the QEMU-only half of the binding; only this call needs it

        def fn(dom: libvirt.virDomain) -> bool:
            try:
                libvirt_qemu.qemuAgentCommand(dom, '{"execute":"guest-ping"}', timeout_s, 0)
            except libvirt.libvirtError:
                return False
            return True

        return self._on_domain(name, fn, retry=False)

    # Hot-plugged disks (home disks)

    # Screen and input (automation)

    def _running(self, dom: libvirt.virDomain, action: str) -> None:
        state = _state(dom)
        if state != DomainState.RUNNING:
            raise _invalid_state(dom.name(), state, action)

    def screenshot(self, name: str) -> Screenshot:
        """The running domain's first screen (libvirt's virDomainScreenshot)."""

        def fn(conn: libvirt.virConnect) -> Screenshot:
            dom = conn.lookupByName(name)
            self._running(dom, "take a screenshot")
            data, mime = screen.take_screenshot(conn, dom)
            return Screenshot(data=data, mime=mime)

        return self._run(fn)

    def send_keys(self, name: str, codes: Sequence[int], hold_ms: int = 30) -> None:
        """Press the Linux key codes together, hold them hold_ms, release them (virDomainSendKey)."""

        def fn(dom: libvirt.virDomain) -> None:
            self._running(dom, "send keys")
            screen.send_chord(dom, codes, hold_ms)

        # Not retried: a key press sent twice types twice.
        self._on_domain(name, fn, retry=False)

    def send_pointer(self, name: str, steps: Sequence[PointerEvent], width: int, height: int) -> None:
        """Pointer steps through QEMU's input-send-event (to the domain's USB tablet)."""

        def fn(dom: libvirt.virDomain) -> None:
            self._running(dom, "send pointer events")
            screen.send_pointer(dom, steps, width, height)

        self._on_domain(name, fn, retry=False)

    def disk_serials(self, name: str) -> list[str]:
        """Serials of the disks the running domain has now (its live definition)."""

        def fn(dom: libvirt.virDomain) -> list[str]:
            root = parse_xml(dom.XMLDesc(0))
            return [el.text or "" for el in root.iterfind("devices/disk/serial")]

        return self._on_domain(name, fn)

    def attach_disk(self, name: str, disk: DiskSpec, secrets: Mapping[str, bytes] | None = None) -> None:
        """Hot-plug a disk into the running domain (live only: it is gone when the domain stops); idempotent.

        An encrypted disk's key is a libvirt secret only while QEMU opens the disk, as at start.
        """
        if disk.serial is None:
            raise ValueError("a hot-plugged disk needs a serial: the guest finds it by that")
        xml = etree.tostring(disk.to_element(), encoding="unicode")

        def fn(conn: libvirt.virConnect) -> None:
            dom = conn.lookupByName(name)
            with _ephemeral_secrets(conn, secrets or {}):
                _tolerate(
                    lambda: dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE),
                    lambda: disk.serial in self.disk_serials(name),
                )

        self._run(fn, retry=False)

    def detach_disk(self, name: str, serial: str, timeout_s: float = 10.0) -> bool:
        """Unplug the disk with this serial; True once it is gone (or was never there), False on timeout."""

        def fn(dom: libvirt.virDomain) -> bool:
            if not dom.isActive():
                return True  # a live-only disk leaves with the QEMU process
            root = parse_xml(dom.XMLDesc(0))
            for el in root.iterfind("devices/disk"):
                if el.findtext("serial") == serial:
                    dom.detachDeviceFlags(etree.tostring(el, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
                    break
            else:
                return True
            # The guest acknowledges the unplug asynchronously (ACPI hotplug); wait for it to let go.
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if serial not in self.disk_serials(name):
                    return True
                time.sleep(0.1)
            return False

        try:
            return self._on_domain(name, fn, retry=False)
        except DomainNotFound:
            return True

    # Guest agent

    def agent_command(self, name: str, command: dict, timeout_s: int = 10) -> object:
        """Send one qemu-guest-agent command (a QMP-style dict) and return its "return" value."""
        import libvirt_qemu  # only the agent needs the QEMU-specific binding

        payload = json.dumps(command)

        def fn(dom: libvirt.virDomain) -> object:
            try:
                raw = libvirt_qemu.qemuAgentCommand(dom, payload, timeout_s, 0)
            except libvirt.libvirtError as exc:
                message = str(exc.get_error_message() or exc)
                lowered = message.lower()
                # A desynchronised channel also comes back as the agent's error, a JSON parse error: unavailable.
                if "unable to execute qemu agent command" in lowered and "json" not in lowered:
                    raise AgentCommandFailed(message, libvirt_code=exc.get_error_code()) from exc
                if "agent" in lowered or "json" in lowered:
                    raise AgentUnavailable(message, libvirt_code=exc.get_error_code()) from exc
                raise
            return json.loads(raw).get("return")

        return self._on_domain(name, fn, retry=False)

    def _uri_host(self) -> str:
        """The host named in the URI, or loopback for local URIs."""
        return urlsplit(self.uri).hostname or "127.0.0.1"

    # Migration

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
        """Live-migrate a running domain to dest_uri (persistent there, undefined here).

        The destination gets its own VNC listen address, and each NIC named in `interfaces` (by MAC)
        the destination's network and filter; with copy_storage the disks are mirrored over NBD
        (incrementally: the destination already holds the backing image and an empty overlay of the
        same name and format). `secrets` (UUID -> disk passphrase) are defined on the destination
        only while the move runs: its QEMU opens the encrypted disks when it starts there. Auto-converge
        throttles a guest that dirties memory faster than the wire copies it (most guests under emulation).
        """
        flags = (
            libvirt.VIR_MIGRATE_LIVE
            | libvirt.VIR_MIGRATE_PERSIST_DEST
            | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
            | libvirt.VIR_MIGRATE_ABORT_ON_ERROR
        )
        if copy_storage:
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
        if auto_converge:
            flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
        dest = LibvirtConnection(dest_uri, open_timeout_s=self.connection.open_timeout_s)
        try:
            dconn = dest.get()

            def fn(dom: libvirt.virDomain) -> MigrationStats:
                if not dom.isActive():
                    raise _invalid_state(name, _state(dom), "live-migrate")

                def retarget(xml: str) -> str:
                    return retarget_interfaces(retarget_vnc_listen(xml, console_address), interfaces)

                # The live XML is read with the clipboard channel unplugged, so the destination starts without
                # it; its persistent definition keeps it, and it is plugged back there once the VM runs.
                with vdagent.unplugged(dom):
                    params = {
                        libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{migrate_address}",
                        libvirt.VIR_MIGRATE_PARAM_DEST_XML: retarget(
                            dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_MIGRATABLE)
                        ),
                        libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: retarget(
                            dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)
                        ),
                    }
                    # A guest that never converges must not hold the operation forever.
                    timer = threading.Timer(timeout_s, lambda: _abort_job(dom))
                    timer.start()
                    try:
                        # The incoming QEMU starts during the prepare phase; once it runs it holds the keys.
                        with _ephemeral_secrets(dconn, secrets or {}):
                            moved = dom.migrate3(dconn, params, flags)
                    finally:
                        timer.cancel()
                stats = moved.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED) if moved is not None else {}
                if moved is not None:
                    vdagent.plug_back(moved)
                return MigrationStats(
                    downtime_ms=int(stats.get("downtime", 0)),
                    elapsed_ms=int(stats.get("time_elapsed", 0)),
                    memory_bytes=int(stats.get("memory_processed", 0)),
                    disk_bytes=int(stats.get("disk_processed", 0)),
                )

            result = self._on_domain(name, fn, retry=False)
        finally:
            dest.close()
        # The domain left this host; its cached metadata (keyed by UUID) is re-read when needed.
        with self._metadata_lock:
            self._metadata_cache.clear()
        return result

    # Storage

    def pool_free_bytes(self, pool: str) -> int:
        """Bytes still free in a storage pool (refreshed first, so files made outside libvirt count)."""

        def fn(conn: libvirt.virConnect) -> int:
            handle = conn.storagePoolLookupByName(pool)
            if not handle.isActive():
                raise OperationFailed(f"storage pool {pool!r} is not active")
            handle.refresh(0)
            return int(handle.info()[3])

        return self._run(fn)

    def pool_path(self, pool: str) -> str:
        """The target directory of a storage pool."""
        return self._run(lambda conn: storage.pool_path(conn, pool))

    def volume_path(self, pool: str, name: str) -> str:
        """The path of a volume on the host."""
        return self._run(lambda conn: storage.volume_path(conn, pool, name))

    def volume_exists(self, pool: str, name: str) -> bool:
        """Whether the pool has a volume of that name."""
        return self._run(lambda conn: storage.volume_exists(conn, pool, name))

    def volume_create(self, pool: str, name: str, capacity_bytes: int, fmt: str = "qcow2") -> str:
        """Create an empty sparse volume; returns its path."""
        return self._run(
            lambda conn: storage.volume_create(conn, pool, name, capacity_bytes, fmt),
            retry=False,
        )

    def volume_create_linked_clone(
        self,
        pool: str,
        name: str,
        backing_path: str,
        backing_format: str = "qcow2",
        capacity_bytes: int | None = None,
    ) -> str:
        """Create a qcow2 overlay on backing_path (sized like it by default); returns its path."""
        return self._run(
            lambda conn: storage.volume_create_linked_clone(
                conn, pool, name, backing_path, backing_format, capacity_bytes
            ),
            retry=False,
        )

    def encrypted_disk_create(
        self, pool: str, name: str, passphrase: bytes, *, backing_path: str, backing_format: str, capacity_bytes: int
    ) -> str:
        """A new empty LUKS qcow2 overlay on backing_path in the pool's directory (seconds of CPU); returns its path."""
        path = os.path.join(self.pool_path(pool), name)
        qemu_img.create_encrypted(
            path,
            passphrase,
            capacity_bytes,
            backing_path=backing_path,
            backing_format=backing_format,
            shell=self._host_shell(),
        )
        return path

    def encrypted_disk_from_spare(self, pool: str, name: str, spare_path: str) -> str:
        """Rename a ready spare overlay to the named disk (microseconds); returns its path.

        A retry finds the spare already renamed; VolumeNotFound when neither file is there.
        """
        path = os.path.join(self.pool_path(pool), name)
        if os.path.dirname(os.path.abspath(spare_path)) != os.path.dirname(path):
            raise OperationFailed(f"spare {spare_path} is not in pool {pool}")
        # Atomic within one directory; False when neither the spare nor the disk is there.
        if not self._host_shell().rename(spare_path, path):
            raise VolumeNotFound(f"spare disk {spare_path} is missing")
        return path

    def encrypted_file_delete(self, path: str) -> None:
        """Delete an encrypted disk or spare made outside libvirt; missing is success."""
        self._host_shell().remove(path)

    def volume_delete(self, pool: str, name: str) -> None:
        """Delete a volume; a missing volume is success."""
        self._run(lambda conn: storage.volume_delete(conn, pool, name))

    def volume_capacity(self, pool: str, name: str) -> int:
        """The volume's size as its guest sees it, in bytes."""
        return self._run(lambda conn: storage.volume_capacity(conn, pool, name))

    def disk_grow(self, name: str, pool: str, volume: str, capacity_bytes: int, target_dev: str = "vda") -> bool:
        """Grow a domain's disk to capacity_bytes: live through QEMU when it runs, else the volume itself.

        Returns whether it was done live. Shrinking is refused (the guest's filesystem would be cut off);
        asking for the size it has already is success, so a retried resize does nothing twice.
        """

        def fn(conn: libvirt.virConnect) -> bool:
            current = storage.volume_capacity(conn, pool, volume)
            if capacity_bytes < current:
                raise OperationFailed(f"{volume} is {current} bytes; disks never shrink (asked {capacity_bytes})")
            dom = conn.lookupByName(name)
            live = bool(dom.isActive())
            if capacity_bytes == current:
                return live
            if live:
                # QEMU grows the image and tells the guest's virtio-blk driver the new capacity at once.
                dom.blockResize(target_dev, capacity_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
            else:
                storage.volume_resize(conn, pool, volume, capacity_bytes)
            return live

        return self._run(fn, retry=False)

    def encrypted_disk_grow(
        self, name: str, path: str, passphrase: bytes, capacity_bytes: int, target_dev: str = "vda"
    ) -> bool:
        """disk_grow for a LUKS overlay made by qemu-img (libvirt's pool knows neither it nor its key)."""

        def fn(conn: libvirt.virConnect) -> bool:
            current = qemu_img.virtual_size(path, shell=self._host_shell())
            if capacity_bytes < current:
                raise OperationFailed(f"{path} is {current} bytes; disks never shrink (asked {capacity_bytes})")
            dom = conn.lookupByName(name)
            live = bool(dom.isActive())
            if capacity_bytes == current:
                return live
            if live:
                # QEMU holds the key already: it grows the image and tells the guest.
                dom.blockResize(target_dev, capacity_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
            else:
                qemu_img.grow_encrypted(path, passphrase, capacity_bytes, shell=self._host_shell())
            return live

        return self._run(fn, retry=False)

    def volume_upload(self, pool: str, name: str, src_path: str, fmt: str = "qcow2") -> str:
        """Create a volume from a local file, streamed over the connection; returns its path."""
        return self._run(lambda conn: storage.volume_upload(conn, pool, name, src_path, fmt), retry=False)

    def volume_download(self, pool: str, name: str, dest_path: str) -> None:
        """Stream a volume's bytes into a local file (replaced only when complete)."""
        self._run(lambda conn: storage.volume_download(conn, pool, name, dest_path))

    # Networks and filters

    def interface_set_isolated(self, name: str, mac: str, isolated: bool) -> bool:
        """Switch port isolation of the domain's NIC with that MAC, live and in its config; True if it changed."""

        def fn(dom: libvirt.virDomain) -> bool:
            root = parse_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            for iface in root.iterfind("devices/interface"):
                mac_el = iface.find("mac")
                if mac_el is None or mac_el.get("address", "").lower() != mac.lower():
                    continue
                port = iface.find("port")
                wanted = "yes" if isolated else "no"
                if port is not None and port.get("isolated") == wanted:
                    return False
                if port is None:
                    port = etree.SubElement(iface, "port")
                port.set("isolated", wanted)
                flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
                dom.updateDeviceFlags(etree.tostring(iface, encoding="unicode"), flags)
                return True
            return False

        return self._on_domain(name, fn)

    def network_ensure(self, spec: NetworkSpec) -> None:
        """Define, start and autostart the network; align its static DHCP leases live."""
        self._run(lambda conn: networks.network_ensure(conn, spec))

    def network_remove(self, name: str) -> None:
        """Stop and undefine the network; a missing one is success."""
        self._run(lambda conn: networks.network_remove(conn, name))

    def network_dhcp_hosts(self, name: str) -> tuple[DhcpHost, ...] | None:
        """The network's static leases, or None when it does not exist."""
        return self._run(lambda conn: networks.network_dhcp_hosts(conn, name))

    def network_subnets(self) -> tuple[tuple[str, str], ...]:
        """(name, CIDR) of the IPv4 subnets of every network defined on the host, Quetzal's or not."""
        return self._run(networks.network_subnets)

    @property
    def supports_nwfilter(self) -> bool:
        """Whether this host can filter guest traffic (every libvirtd; not the test driver)."""
        if self._nwfilter is None:
            self._nwfilter = self._run(networks.supports_nwfilter)
        return self._nwfilter

    def nwfilter_define(self, spec: NwFilterSpec) -> None:
        """Create or replace a filter; running guests that use it get the new rules at once."""
        self._run(lambda conn: networks.nwfilter_define(conn, spec))

    def nwfilter_exists(self, name: str) -> bool:
        """Whether a filter of that name is defined."""
        return self._run(lambda conn: networks.nwfilter_exists(conn, name))

    def nwfilter_remove(self, name: str) -> None:
        """Undefine a filter; a missing one is success."""
        self._run(lambda conn: networks.nwfilter_remove(conn, name))


# One instance per URI per process; libvirt connections are thread-safe.
_hypervisors: dict[str, LibvirtHypervisor] = {}
_hypervisors_lock = threading.Lock()
# Connections inherited across fork belong to the parent; never close them from a child.
_inherited: list[object] = []


def get_hypervisor(uri: str) -> LibvirtHypervisor:
    """The process-wide LibvirtHypervisor for uri (connects lazily, reconnects by itself)."""
    with _hypervisors_lock:
        hv = _hypervisors.get(uri)
        if hv is None:
            hv = _hypervisors[uri] = LibvirtHypervisor(uri)
        return hv


def forget_hypervisors() -> None:
    """Close and drop every cached hypervisor (tests, shutdown)."""
    with _hypervisors_lock:
        cached = list(_hypervisors.values())
        _hypervisors.clear()
    for hv in cached:
        hv.close()


def _after_fork_in_child() -> None:
    """Start the child with an empty cache, keeping inherited connections unclosed."""
    global _hypervisors_lock
    _hypervisors_lock = threading.Lock()
    for hv in _hypervisors.values():
        _inherited.append(hv.connection.abandon())
    _hypervisors.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
