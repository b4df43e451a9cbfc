"""Pure parsers for XML and records libvirt returns (no libvirt import, unit-testable)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lxml import etree

from hosts.hypervisor.base import DomainState, DomainStats, MdevType, PciDevice, SnapshotInfo
from hosts.hypervisor.domain import InterfaceSpec, parse_xml

__all__ = [
    "domain_state",
    "format_version",
    "parse_pci_device",
    "parse_pool_path",
    "parse_snapshot",
    "parse_virt_types",
    "parse_vnc_listen",
    "retarget_interfaces",
    "retarget_vnc_listen",
    "stats_from_record",
]

# virDomainState values; a stable part of libvirt's ABI.
_LIBVIRT_STATES: dict[int, DomainState] = {
    0: DomainState.UNKNOWN,  # NOSTATE
    1: DomainState.RUNNING,
    2: DomainState.RUNNING,  # BLOCKED on a resource: still running
    3: DomainState.PAUSED,
    4: DomainState.RUNNING,  # SHUTDOWN in progress: the guest still runs until it is off
    5: DomainState.SHUTOFF,
    6: DomainState.CRASHED,
    7: DomainState.PMSUSPENDED,
}

_SNAPSHOT_STATES: dict[str, DomainState] = {
    "running": DomainState.RUNNING,
    "blocked": DomainState.RUNNING,
    "paused": DomainState.PAUSED,
    "shutdown": DomainState.RUNNING,
    "shutoff": DomainState.SHUTOFF,
    "crashed": DomainState.CRASHED,
    "pmsuspended": DomainState.PMSUSPENDED,
}


def domain_state(libvirt_state: int) -> DomainState:
    """Fold a virDomainState number into DomainState."""
    return _LIBVIRT_STATES.get(libvirt_state, DomainState.UNKNOWN)


def format_version(encoded: int) -> str:
    """Turn libvirt's major*1e6 + minor*1e3 + micro encoding into "major.minor.micro"."""
    major, rest = divmod(int(encoded), 1_000_000)
    minor, micro = divmod(rest, 1_000)
    return f"{major}.{minor}.{micro}"


def parse_virt_types(capabilities_xml: str) -> tuple[str, ...]:
    """The domain types (kvm, qemu, ...) the host's capabilities offer for any guest arch."""
    root = parse_xml(capabilities_xml)
    types = {d.get("type", "") for d in root.iterfind("guest/arch/domain")}
    types.discard("")
    return tuple(sorted(types))


def _int(text: str | None, default: int = 0) -> int:
    """Parse decimal or 0x-prefixed hex text, with a default for missing or bad values."""
    if text is None:
        return default
    try:
        return int(text.strip(), 0)
    except ValueError:
        return default


def parse_pci_device(nodedev_xml: str) -> tuple[PciDevice, tuple[MdevType, ...]] | None:
    """A PCI node device and the mdev types it offers, or None if it is not a PCI device."""
    root = parse_xml(nodedev_xml)
    cap = root.find("capability[@type='pci']")
    if cap is None:
        return None
    vendor = cap.find("vendor")
    product = cap.find("product")
    device = PciDevice(
        name=root.findtext("name", ""),
        domain=_int(cap.findtext("domain")),
        bus=_int(cap.findtext("bus")),
        slot=_int(cap.findtext("slot")),
        function=_int(cap.findtext("function")),
        class_code=_int(cap.findtext("class")),
        vendor_id=_int(vendor.get("id") if vendor is not None else None),
        product_id=_int(product.get("id") if product is not None else None),
        vendor_name=(vendor.text or "").strip() if vendor is not None else "",
        product_name=(product.text or "").strip() if product is not None else "",
        driver=root.findtext("driver/name"),
    )
    mdev_types = tuple(
        MdevType(
            type_id=t.get("id", ""),
            name=t.findtext("name", "") or t.get("id", ""),
            device_api=t.findtext("deviceAPI", ""),
            available_instances=_int(t.findtext("availableInstances")),
            parent_address=device.address,
        )
        for t in cap.iterfind("capability[@type='mdev_types']/type")
    )
    return device, mdev_types


def parse_vnc_listen(domain_xml: str) -> tuple[str | None, int | None]:
    """The VNC listen address and port of a live domain XML (None where unset)."""
    root = parse_xml(domain_xml)
    graphics = root.find("devices/graphics[@type='vnc']")
    if graphics is None:
        return None, None
    listen = graphics.find("listen[@type='address']")
    host = listen.get("address") if listen is not None else None
    host = host or graphics.get("listen")
    port = _int(graphics.get("port"), default=-1)
    return host, (port if port > 0 else None)


def parse_pool_path(pool_xml: str) -> str:
    """A storage pool's target directory."""
    return parse_xml(pool_xml).findtext("target/path", "")


def parse_snapshot(snapshot_xml: str, *, current: bool) -> SnapshotInfo:
    """A domain snapshot's name, time and state."""
    root = parse_xml(snapshot_xml)
    return SnapshotInfo(
        name=root.findtext("name", ""),
        created_at=_int(root.findtext("creationTime")),
        state=_SNAPSHOT_STATES.get(root.findtext("state", ""), DomainState.UNKNOWN),
        current=current,
        description=root.findtext("description"),
    )


def _sum_indexed(record: Mapping[str, Any], group: str, key: str) -> int:
    """Sum e.g. block.<i>.rd.bytes over block.count entries."""
    count = int(record.get(f"{group}.count", 0))
    return sum(int(record.get(f"{group}.{i}.{key}", 0)) for i in range(count))


def stats_from_record(name: str, desktop_id: int, record: Mapping[str, Any]) -> DomainStats:
    """Build DomainStats from one virConnectGetAllDomainStats record (missing keys are 0)."""
    total = int(record.get("balloon.current", record.get("balloon.maximum", 0)))
    if "balloon.available" in record and "balloon.unused" in record:
        # The guest's own view (needs the balloon driver and a stats period).
        used = int(record["balloon.available"]) - int(record["balloon.unused"])
    else:
        # Without guest cooperation the QEMU process's resident size is the best estimate.
        used = int(record.get("balloon.rss", 0))
    return DomainStats(
        name=name,
        desktop_id=desktop_id,
        cpu_time_ns=int(record.get("cpu.time", 0)),
        vcpus=int(record.get("vcpu.current", 0)),
        memory_used_kib=max(used, 0),
        memory_total_kib=total,
        disk_rd_bytes=_sum_indexed(record, "block", "rd.bytes"),
        disk_wr_bytes=_sum_indexed(record, "block", "wr.bytes"),
        net_rx_bytes=_sum_indexed(record, "net", "rx.bytes"),
        net_tx_bytes=_sum_indexed(record, "net", "tx.bytes"),
        state=domain_state(int(record.get("state.state", 0))),
    )


def retarget_vnc_listen(domain_xml: str, listen_address: str) -> str:
    """The domain XML with every VNC server listening on listen_address (a migration's destination)."""
    root = parse_xml(domain_xml)
    for graphics in root.iterfind("./devices/graphics[@type='vnc']"):
        graphics.set("listen", listen_address)
        for listen in graphics.iterfind("listen[@type='address']"):
            listen.set("address", listen_address)
    return etree.tostring(root, encoding="unicode")


def retarget_interfaces(domain_xml: str, interfaces: Sequence[InterfaceSpec]) -> str:
    """The domain XML with each NIC whose MAC is in `interfaces` on that spec's network, filter and isolation.

    A migration's destination has its own network and filter names. The MAC stays: libvirt refuses a
    destination NIC whose MAC differs from the running guest's (ABI stability).
    """
    if not interfaces:
        return domain_xml
    wanted = {spec.mac: spec for spec in interfaces if spec.mac}
    root = parse_xml(domain_xml)
    for iface in root.iterfind("./devices/interface"):
        mac = iface.find("mac")
        spec = wanted.get((mac.get("address", "") if mac is not None else "").lower())
        if spec is None:
            continue
        iface.set("type", "network" if spec.network is not None else "bridge")
        source = iface.find("source")
        if source is None:
            source = etree.SubElement(iface, "source")
        # The source host's port binding and bridge mean nothing on the destination.
        source.attrib.clear()
        source.set("network" if spec.network is not None else "bridge", str(spec.network or spec.bridge))
        ref = iface.find("filterref")
        if spec.filter is None:
            if ref is not None:
                iface.remove(ref)
        else:
            if ref is None:
                ref = etree.SubElement(iface, "filterref")
            ref.set("filter", spec.filter)
        if spec.isolated is not None:
            port = iface.find("port")
            if port is None:
                port = etree.SubElement(iface, "port")
            port.set("isolated", "yes" if spec.isolated else "no")
    return etree.tostring(root, encoding="unicode")


# KSM counts 4 KiB pages on x86_64 and aarch64 with 4K pages, the hosts Quetzal runs on.
KSM_PAGE_KIB = 4


def guest_memory_mib(stats: Mapping[str, Any]) -> int | None:
    """What a running guest uses, in MiB, from virDomainMemoryStats; None when it reports nothing usable.

    The guest's own view (balloon 'actual' less 'unused', which needs the balloon driver and a stats period)
    when there is one; else the QEMU process's resident size ('rss').
    """
    if "actual" in stats and "unused" in stats:
        used_kib = int(stats["actual"]) - int(stats["unused"])
    elif "rss" in stats:
        used_kib = int(stats["rss"])
    else:
        return None
    return max(0, used_kib) // 1024


def ksm_facts(params: Mapping[str, Any]) -> tuple[int | None, bool | None]:
    """(MiB merged pages save, whether KSM is merging) from virNodeGetMemoryParameters; None where absent."""
    if "shm_pages_sharing" not in params:
        return None, None
    sharing = max(0, int(params["shm_pages_sharing"]))
    scans = max(0, int(params.get("shm_full_scans", 0)))
    return sharing * KSM_PAGE_KIB // 1024, sharing > 0 or scans > 0
