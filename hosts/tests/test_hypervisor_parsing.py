"""Pure parsers of libvirt output: stats records, node devices, capabilities, snapshots."""

from __future__ import annotations

import pytest

from hosts.hypervisor.base import DomainState, HostInfo, detect_virt_type
from hosts.hypervisor.domain import InterfaceSpec, parse_xml
from hosts.hypervisor.parsing import (
    domain_state,
    format_version,
    parse_pci_device,
    parse_pool_path,
    parse_snapshot,
    parse_virt_types,
    parse_vnc_listen,
    retarget_interfaces,
    stats_from_record,
)

QEMU_RECORD = {
    "state.state": 1,
    "state.reason": 1,
    "cpu.time": 123_456_789_000,
    "balloon.current": 2_097_152,
    "balloon.maximum": 4_194_304,
    "balloon.rss": 900_000,
    "balloon.available": 2_000_000,
    "balloon.unused": 1_500_000,
    "vcpu.current": 2,
    "vcpu.maximum": 4,
    "block.count": 2,
    "block.0.name": "vda",
    "block.0.rd.bytes": 1000,
    "block.0.wr.bytes": 2000,
    "block.1.name": "sda",
    "block.1.rd.bytes": 30,
    "block.1.wr.bytes": 0,
    "net.count": 2,
    "net.0.rx.bytes": 10,
    "net.0.tx.bytes": 20,
    "net.1.rx.bytes": 5,
    "net.1.tx.bytes": 7,
}


def test_it_sums_block_and_net_counters_over_all_devices() -> None:
    stats = stats_from_record("d1", 42, QEMU_RECORD)
    assert (stats.name, stats.desktop_id, stats.state) == ("d1", 42, DomainState.RUNNING)
    assert stats.cpu_time_ns == 123_456_789_000
    assert stats.vcpus == 2
    assert (stats.disk_rd_bytes, stats.disk_wr_bytes) == (1030, 2000)
    assert (stats.net_rx_bytes, stats.net_tx_bytes) == (15, 27)


def test_it_takes_used_memory_from_the_guest_when_it_reports_it() -> None:
    stats = stats_from_record("d1", 42, QEMU_RECORD)
    assert stats.memory_total_kib == 2_097_152
    assert stats.memory_used_kib == 500_000


def test_it_falls_back_to_the_qemu_rss_without_guest_balloon_stats() -> None:
    record = {k: v for k, v in QEMU_RECORD.items() if k not in ("balloon.available", "balloon.unused")}
    assert stats_from_record("d1", 42, record).memory_used_kib == 900_000


def test_it_reads_an_inactive_domain_record_as_zeros() -> None:
    stats = stats_from_record("d2", 7, {"state.state": 5, "state.reason": 0})
    assert stats.state is DomainState.SHUTOFF
    assert (stats.cpu_time_ns, stats.memory_used_kib, stats.disk_rd_bytes, stats.net_tx_bytes) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        (0, DomainState.UNKNOWN),
        (1, DomainState.RUNNING),
        (2, DomainState.RUNNING),
        (3, DomainState.PAUSED),
        (4, DomainState.RUNNING),
        (5, DomainState.SHUTOFF),
        (6, DomainState.CRASHED),
        (7, DomainState.PMSUSPENDED),
        (99, DomainState.UNKNOWN),
    ],
)
def test_it_folds_libvirt_states(raw: int, state: DomainState) -> None:
    assert domain_state(raw) is state


def test_it_marks_only_states_with_a_qemu_process_active() -> None:
    assert {s for s in DomainState if s.is_active} == {
        DomainState.RUNNING,
        DomainState.PAUSED,
        DomainState.PMSUSPENDED,
    }


def test_it_formats_libvirt_version_numbers() -> None:
    assert format_version(9_000_000) == "9.0.0"
    assert format_version(7_002_015) == "7.2.15"


def test_it_collects_virt_types_of_every_guest_arch() -> None:
    caps = """<capabilities><host/>
      <guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/><domain type='kvm'/></arch></guest>
      <guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>
    </capabilities>"""
    assert parse_virt_types(caps) == ("kvm", "qemu")


def make_host(virt_types: tuple[str, ...]) -> HostInfo:
    """A HostInfo that differs only in its virt types."""
    return HostInfo("h", "x86_64", 4, 8192, 4096, virt_types, "9.0.0", "qemu", "7.2.0")


def test_it_picks_kvm_when_offered_and_tcg_otherwise() -> None:
    assert detect_virt_type(make_host(("kvm", "qemu"))) == "kvm"
    assert detect_virt_type(make_host(("qemu",))) == "qemu"
    assert detect_virt_type(make_host(("test",))) == "qemu"


GPU_XML = """<device>
  <name>pci_0000_3b_00_0</name>
  <driver><name>vfio-pci</name></driver>
  <capability type='pci'>
    <class>0x030200</class>
    <domain>0</domain><bus>59</bus><slot>0</slot><function>0</function>
    <product id='0x1eb8'>TU104GL [Tesla T4]</product>
    <vendor id='0x10de'>NVIDIA Corporation</vendor>
    <capability type='mdev_types'>
      <type id='nvidia-222'><name>GRID T4-1B</name><deviceAPI>vfio-pci</deviceAPI>
        <availableInstances>16</availableInstances></type>
    </capability>
  </capability>
</device>"""


def test_it_parses_a_gpu_node_device_with_its_mdev_types() -> None:
    parsed = parse_pci_device(GPU_XML)
    assert parsed is not None
    device, mdev_types = parsed
    assert device.address == "0000:3b:00.0"
    assert device.is_display
    assert (device.vendor_id, device.product_id) == (0x10DE, 0x1EB8)
    assert device.product_name == "TU104GL [Tesla T4]"
    assert device.driver == "vfio-pci"
    (mdev,) = mdev_types
    assert (mdev.type_id, mdev.name, mdev.available_instances) == ("nvidia-222", "GRID T4-1B", 16)
    assert mdev.parent_address == "0000:3b:00.0"


def test_it_tells_a_nic_from_a_gpu_and_ignores_non_pci_devices() -> None:
    nic = GPU_XML.replace("0x030200", "0x020000")
    parsed = parse_pci_device(nic)
    assert parsed is not None and not parsed[0].is_display
    assert parse_pci_device("<device><name>computer</name><capability type='system'/></device>") is None


def test_it_reads_the_vnc_listen_address_and_port() -> None:
    xml = """<domain><devices>
      <graphics type='spice' port='5930'/>
      <graphics type='vnc' port='5901' autoport='yes' listen='10.0.0.5'>
        <listen type='address' address='10.0.0.5'/></graphics></devices></domain>"""
    assert parse_vnc_listen(xml) == ("10.0.0.5", 5901)
    assert parse_vnc_listen("<domain><devices><graphics type='vnc' port='-1'/></devices></domain>") == (None, None)
    assert parse_vnc_listen("<domain><devices/></domain>") == (None, None)


def test_it_reads_pool_paths_and_snapshots() -> None:
    assert parse_pool_path("<pool><target><path>/srv/images</path></target></pool>") == "/srv/images"
    snap = parse_snapshot(
        "<domainsnapshot><name>s1</name><description>before update</description>"
        "<state>shutoff</state><creationTime>1700000000</creationTime></domainsnapshot>",
        current=True,
    )
    assert (snap.name, snap.created_at, snap.state, snap.current) == ("s1", 1700000000, DomainState.SHUTOFF, True)
    assert snap.description == "before update"


def test_it_puts_a_migrating_nic_on_the_destinations_network_and_filter() -> None:
    # Given a running domain's NIC as the source host reports it, and a second NIC on a host bridge
    xml = """<domain><devices>
      <interface type='network'>
        <mac address='52:54:00:aa:bb:cc'/>
        <source network='quetzal-src' portid='0c1f5d0e-9e0b-4b6e-9d1a-3f4f1f2c9a11' bridge='qzsrc'/>
        <target dev='vnet3'/><model type='virtio'/>
        <filterref filter='quetzal-src-d7'/><port isolated='yes'/><alias name='net0'/>
      </interface>
      <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/></interface>
    </devices></domain>"""
    # When it is retargeted to the destination's network and filter (MAC given in any case)
    dest = InterfaceSpec(network="quetzal-dst", mac="52:54:00:AA:BB:CC", isolated=False, filter="quetzal-dst-d7")
    root = parse_xml(retarget_interfaces(xml, [dest]))
    moved, other = root.findall("devices/interface")
    # Then it names the new network only (no port or bridge of the source host), the new filter and isolation
    assert moved.get("type") == "network"
    assert dict(moved.find("source").attrib) == {"network": "quetzal-dst"}
    assert moved.find("filterref").get("filter") == "quetzal-dst-d7"
    assert moved.find("port").get("isolated") == "no"
    assert moved.find("mac").get("address") == "52:54:00:aa:bb:cc" and moved.find("alias") is not None
    # And a NIC it does not name is left as it was
    assert other.get("type") == "bridge" and other.find("source").get("bridge") == "br0"
    # And a NIC moved to a network without a filter loses the old one; no NICs named: the XML is unchanged
    bare = parse_xml(retarget_interfaces(xml, [InterfaceSpec(network="n2", mac="52:54:00:aa:bb:cc")]))
    assert bare.find("devices/interface/filterref") is None
    assert retarget_interfaces(xml, []) == xml
