"""Domain XML built from typed specs: schema-valid, escaped, carrying our metadata."""

from __future__ import annotations

import dataclasses
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from hosts.hypervisor.domain import (
    DESKTOP_XMLNS,
    DesktopMetadata,
    DiskSpec,
    DomainSpec,
    GraphicsSpec,
    HostdevSpec,
    InterfaceSpec,
    MdevSpec,
    SecretSpec,
    parse_desktop_metadata,
    parse_metadata,
)
from tests.services import require_tool

HOSTILE = "a<b>&c\"d'e ]]> <!--x--> &amp; <name>evil<name> <?pi x?>"
NS = {"q": DESKTOP_XMLNS}


def virt_xml_validate() -> str:
    """The virt-xml-validate binary, through the shared gate."""
    return require_tool("virt-xml-validate", "libvirt-clients")


def assert_valid_domain_xml(xml: str, tmp_path: Path) -> None:
    """Run libvirt's own RelaxNG validation on a domain XML."""
    path = tmp_path / f"domain-{uuid.uuid4().hex}.xml"
    path.write_text(xml)
    result = subprocess.run([virt_xml_validate(), str(path), "domain"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{xml}"


def make_spec(**overrides: Any) -> DomainSpec:
    """A small valid spec; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "name": "quetzal-desktop-42",
        "uuid": "6f1b2a8e-8a4e-4f43-9d7a-3b1f0e3c1a11",
        "desktop_id": 42,
        "tenant_slug": "acme",
        "vcpus": 2,
        "memory_mib": 2048,
        "virt_type": "kvm",
        "disks": (DiskSpec("/var/lib/libvirt/images/desktop-42.qcow2"),),
        "interfaces": (InterfaceSpec(network="default"),),
    }
    fields.update(overrides)
    return DomainSpec(**fields)


def full_spec(**overrides: Any) -> DomainSpec:
    """A spec using every feature: seed CD, kernel boot, file serial, GPU, vGPU, password."""
    fields: dict[str, Any] = {
        "machine": "pc",
        "disks": (
            DiskSpec("/var/lib/libvirt/images/desktop-42.qcow2", cache="none"),
            DiskSpec("/var/lib/libvirt/images/data-42.raw", target_dev="vdb", driver_type="raw"),
            DiskSpec.cloud_init_seed("/var/lib/libvirt/images/seed-42.iso"),
        ),
        "interfaces": (
            InterfaceSpec(network="default", mac="52:54:00:12:34:56"),
            InterfaceSpec(bridge="br0", model="e1000"),
        ),
        "graphics": GraphicsSpec(listen_address="10.0.0.5", password="s3cret", video_model="virtio"),
        "serial_log_path": "/var/log/quetzal/desktop-42.log",
        "kernel": "/var/lib/quetzal/vmlinuz",
        "initrd": "/var/lib/quetzal/initrd.img",
        "cmdline": "console=ttyS0 quiet",
        "hostdevs": (HostdevSpec.from_address("0000:3b:00.0"),),
        "mdevs": (MdevSpec("c2177883-f1bb-47f0-914d-32a22e3a8804"),),
        "title": "Alice's desktop",
        "description": "Marketing pool\nfloor 2",
        "cpu_mode": "host-passthrough",
        "guest_agent": True,
        "clipboard_channel": True,
        "sound": True,
    }
    fields.update(overrides)
    return make_spec(**fields)


def parse(spec: DomainSpec) -> etree._Element:
    """The spec's XML, parsed back."""
    return etree.fromstring(spec.to_xml().encode())


def test_it_renders_a_minimal_spec_that_libvirt_schema_accepts(tmp_path: Path) -> None:
    assert_valid_domain_xml(make_spec().to_xml(), tmp_path)


def test_it_renders_every_feature_in_a_schema_valid_document(tmp_path: Path) -> None:
    assert_valid_domain_xml(full_spec().to_xml(), tmp_path)


def test_it_renders_a_headless_tcg_spec_without_devices_valid(tmp_path: Path) -> None:
    spec = make_spec(virt_type="qemu", disks=(), interfaces=(), graphics=None)
    root = parse(spec)
    assert root.get("type") == "qemu"
    assert root.find("devices/graphics") is None
    assert_valid_domain_xml(spec.to_xml(), tmp_path)


@pytest.mark.parametrize("field", ["name", "title", "description"])
def test_it_escapes_hostile_text_instead_of_injecting_markup(field: str, tmp_path: Path) -> None:
    spec = make_spec(**{field: HOSTILE})
    root = parse(spec)
    assert root.findtext(field) == HOSTILE
    # Exactly the nodes a benign value gives: nothing smuggled in through the value.
    benign = parse(make_spec(**{field: "benign"}))
    assert [el.tag for el in root.iter()] == [el.tag for el in benign.iter()]
    assert root.xpath("//comment() | //processing-instruction()") == []
    assert_valid_domain_xml(spec.to_xml(), tmp_path)


def test_it_escapes_hostile_paths_and_cmdline(tmp_path: Path) -> None:
    path = "/images/a'b\"c<d>&e.qcow2"
    spec = make_spec(disks=(DiskSpec(path),), kernel="/k&<'\"", cmdline=HOSTILE, serial_log_path="/l<&>'\".log")
    root = parse(spec)
    assert root.find("devices/disk/source").get("file") == path
    assert root.findtext("os/kernel") == "/k&<'\""
    assert root.findtext("os/cmdline") == HOSTILE
    assert root.find("devices/serial/source").get("path") == "/l<&>'\".log"
    assert_valid_domain_xml(spec.to_xml(), tmp_path)


def test_it_stores_desktop_id_and_tenant_in_our_metadata_namespace() -> None:
    root = parse(make_spec(desktop_id=7, tenant_slug="bob-co"))
    (element,) = root.xpath("/domain/metadata/q:desktop", namespaces=NS)
    assert element.get("id") == "7"
    assert element.get("tenant") == "bob-co"
    assert element.prefix == "quetzal"


def test_it_parses_the_desktop_id_back_from_domain_xml() -> None:
    spec = make_spec(desktop_id=123456)
    assert parse_desktop_metadata(spec.to_xml()) == 123456
    assert parse_metadata(spec.to_xml()) == DesktopMetadata(123456, "acme")


def test_it_parses_the_bare_element_libvirt_metadata_api_returns() -> None:
    assert parse_desktop_metadata('<desktop id="42" tenant="acme"/>') == 42
    assert parse_metadata('<desktop id="42"/>') == DesktopMetadata(42, None)


@pytest.mark.parametrize(
    "xml",
    [
        "<domain type='kvm'><name>foreign</name></domain>",
        "<domain><metadata><other:desktop xmlns:other='urn:x' id='4'/></metadata></domain>",
        f"<domain><metadata><q:desktop xmlns:q='{DESKTOP_XMLNS}' id='abc'/></metadata></domain>",
        f"<domain><metadata><q:desktop xmlns:q='{DESKTOP_XMLNS}' id='-3'/></metadata></domain>",
        f"<domain><metadata><q:desktop xmlns:q='{DESKTOP_XMLNS}' id='0'/></metadata></domain>",
        f"<domain><metadata><q:desktop xmlns:q='{DESKTOP_XMLNS}'/></metadata></domain>",
        "<desktop id='٤٢'/>",
        "not xml at all <",
    ],
)
def test_it_reports_no_desktop_for_foreign_or_broken_metadata(xml: str) -> None:
    assert parse_desktop_metadata(xml) is None


def test_it_does_not_resolve_external_entities() -> None:
    xml = (
        '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        f"<domain><metadata><q:desktop xmlns:q='{DESKTOP_XMLNS}' id='5' tenant='&x;'/></metadata></domain>"
    )
    # With entity resolution on, the tenant would be this machine's hostname.
    assert parse_metadata(xml) is None


def test_it_boots_the_kernel_directly_only_when_one_is_given() -> None:
    direct = parse(full_spec())
    assert direct.findtext("os/kernel") == "/var/lib/quetzal/vmlinuz"
    assert direct.findtext("os/initrd") == "/var/lib/quetzal/initrd.img"
    assert direct.findtext("os/cmdline") == "console=ttyS0 quiet"
    assert direct.find("os/boot") is None
    disk_boot = parse(make_spec())
    assert disk_boot.find("os/kernel") is None
    assert disk_boot.find("os/boot").get("dev") == "hd"


def test_it_renders_the_os_type_features_and_lifecycle_actions() -> None:
    root = parse(full_spec())
    os_type = root.find("os/type")
    assert (os_type.text, os_type.get("arch"), os_type.get("machine")) == ("hvm", "x86_64", "pc")
    assert root.find("features/acpi") is not None
    assert root.find("features/apic") is not None
    assert root.findtext("on_poweroff") == "destroy"
    assert root.findtext("on_reboot") == "restart"
    assert root.find("memory").text == "2048"
    assert root.find("memory").get("unit") == "MiB"
    assert root.findtext("vcpu") == "2"
    assert root.find("cpu").get("mode") == "host-passthrough"


def test_it_attaches_the_cloud_init_seed_as_a_readonly_sata_cdrom() -> None:
    root = parse(full_spec())
    (cdrom,) = root.findall("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("file") == "/var/lib/libvirt/images/seed-42.iso"
    assert cdrom.find("target").attrib == {"dev": "sda", "bus": "sata"}
    assert cdrom.find("driver").get("type") == "raw"
    assert cdrom.find("readonly") is not None
    # Internal snapshots of the desktop must not try to snapshot the read-only ISO.
    assert cdrom.get("snapshot") == "no"
    root_disk = root.find("devices/disk[@device='disk']")
    assert root_disk.find("readonly") is None
    assert root_disk.get("snapshot") is None
    assert root_disk.find("driver").attrib == {"name": "qemu", "type": "qcow2", "cache": "none"}


def test_it_writes_the_serial_console_to_a_file_when_asked() -> None:
    root = parse(full_spec())
    assert root.find("devices/serial").get("type") == "file"
    assert root.find("devices/serial/source").get("path") == "/var/log/quetzal/desktop-42.log"
    assert root.find("devices/console").get("type") == "file"
    assert root.find("devices/console/target").get("type") == "serial"


def test_it_falls_back_to_a_pty_serial_console() -> None:
    root = parse(make_spec())
    assert root.find("devices/serial").get("type") == "pty"
    assert root.find("devices/serial/source") is None
    assert root.find("devices/console").get("type") == "pty"


def test_it_listens_for_vnc_only_on_the_given_address() -> None:
    root = parse(full_spec())
    graphics = root.find("devices/graphics")
    assert graphics.get("type") == "vnc"
    assert graphics.get("listen") == "10.0.0.5"
    assert graphics.find("listen").attrib == {"type": "address", "address": "10.0.0.5"}
    assert graphics.get("autoport") == "yes"
    assert graphics.get("passwd") == "s3cret"
    assert root.find("devices/video/model").get("type") == "virtio"
    assert root.find("devices/input").attrib == {"type": "tablet", "bus": "usb"}


def test_it_defaults_vnc_to_loopback_without_password() -> None:
    graphics = parse(make_spec()).find("devices/graphics")
    assert graphics.get("listen") == "127.0.0.1"
    assert graphics.get("passwd") is None


def test_it_renders_a_fixed_vnc_port(tmp_path: Path) -> None:
    spec = make_spec(graphics=GraphicsSpec(autoport=False, port=5907))
    graphics = parse(spec).find("devices/graphics")
    assert (graphics.get("autoport"), graphics.get("port")) == ("no", "5907")
    assert_valid_domain_xml(spec.to_xml(), tmp_path)


def test_it_renders_pci_passthrough_and_mediated_devices() -> None:
    root = parse(full_spec())
    pci = root.find("devices/hostdev[@type='pci']")
    assert pci.get("managed") == "yes"
    assert pci.find("source/address").attrib == {
        "domain": "0x0000",
        "bus": "0x3b",
        "slot": "0x00",
        "function": "0x0",
    }
    mdev = root.find("devices/hostdev[@type='mdev']")
    assert mdev.get("model") == "vfio-pci"
    assert mdev.find("source/address").get("uuid") == "c2177883-f1bb-47f0-914d-32a22e3a8804"


def test_it_renders_network_and_bridge_interfaces() -> None:
    first, second = parse(full_spec()).findall("devices/interface")
    assert first.get("type") == "network"
    assert first.find("source").get("network") == "default"
    assert first.find("mac").get("address") == "52:54:00:12:34:56"
    assert first.find("model").get("type") == "virtio"
    assert InterfaceSpec(network="default", mac="52:54:00:AB:CD:EF").mac == "52:54:00:ab:cd:ef"
    assert second.get("type") == "bridge"
    assert second.find("source").get("bridge") == "br0"
    assert second.find("model").get("type") == "e1000"


def test_it_adds_a_guest_agent_channel_and_a_balloon_with_stats() -> None:
    root = parse(full_spec())
    assert root.find("devices/channel[@type='unix']/target").get("name") == "org.qemu.guest_agent.0"
    assert root.find("devices/memballoon/stats").get("period") == "10"
    # Freed guest pages go back to the host (denser idle desktops)
    assert root.find("devices/memballoon").get("freePageReporting") == "on"
    assert parse(make_spec()).find("devices/channel") is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [("0000:3b:00.0", (0, 0x3B, 0, 0)), ("01:1f.7", (0, 1, 0x1F, 7)), ("ABCD:FF:02.3", (0xABCD, 0xFF, 2, 3))],
)
def test_it_parses_pci_addresses(address: str, expected: tuple[int, int, int, int]) -> None:
    spec = HostdevSpec.from_address(address)
    assert (spec.domain, spec.bus, spec.slot, spec.function) == expected
    assert HostdevSpec.from_address(spec.address) == spec


@pytest.mark.parametrize("address", ["", "3b:00", "0000:3b:00.8", "0000:3b:20.0x", "zz:00.0", "0000:3b:00.0\n"])
def test_it_rejects_bad_pci_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        HostdevSpec.from_address(address)


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": ""},
        {"name": "a/b"},
        {"name": "line\nbreak"},
        {"uuid": "not-a-uuid"},
        {"desktop_id": 0},
        {"desktop_id": True},
        {"tenant_slug": "acme corp"},
        {"vcpus": 0},
        {"memory_mib": 0},
        {"virt_type": "xen"},
        {"initrd": "/i"},
        {"cmdline": "quiet"},
        {"kernel": "relative/vmlinuz"},
        {"serial_log_path": "log.txt"},
        {"title": "two\nlines"},
        {"description": "bell\x07"},
        {"disks": (DiskSpec("/a.qcow2"), DiskSpec("/b.qcow2"))},
    ],
)
def test_it_rejects_invalid_domain_specs(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_spec(**overrides)


@pytest.mark.parametrize(
    "build",
    [
        lambda: DiskSpec("relative.qcow2"),
        lambda: DiskSpec("/a", target_dev="vda1"),
        lambda: DiskSpec("/a", bus="floppy"),
        lambda: DiskSpec("/a", driver_type="vmdk"),
        lambda: DiskSpec("/a", device="cdrom", bus="virtio"),
        lambda: InterfaceSpec(),
        lambda: InterfaceSpec(network="default", bridge="br0"),
        lambda: InterfaceSpec(network="default", mac="52:54:00:12:34"),
        lambda: GraphicsSpec(port=5901),
        lambda: GraphicsSpec(autoport=False),
        lambda: GraphicsSpec(autoport=False, port=22),
        lambda: GraphicsSpec(password="longer-than-eight"),
        lambda: GraphicsSpec(password=""),
        lambda: HostdevSpec(bus=256, slot=0, function=0),
        lambda: HostdevSpec(bus=0, slot=0, function=8),
        lambda: MdevSpec("nope"),
    ],
)
def test_it_rejects_invalid_device_specs(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_it_normalises_uuids_and_keeps_specs_immutable() -> None:
    spec = make_spec(uuid="6F1B2A8E8A4E4F439D7A3B1F0E3C1A11", disks=[DiskSpec("/a.qcow2")])
    assert spec.uuid == "6f1b2a8e-8a4e-4f43-9d7a-3b1f0e3c1a11"
    assert isinstance(spec.disks, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.vcpus = 8  # type: ignore[misc]
    assert hash(spec) == hash(make_spec(uuid=spec.uuid, disks=(DiskSpec("/a.qcow2"),)))


def test_it_renders_the_same_xml_for_equal_specs() -> None:
    assert full_spec().to_xml() == full_spec().to_xml()
    assert make_spec(vcpus=2).to_xml() != make_spec(vcpus=4).to_xml()


def test_it_adds_the_qemu_vdagent_clipboard_channel_only_when_asked(tmp_path: Path) -> None:
    spec = make_spec(clipboard_channel=True)
    channel = parse(spec).find("devices/channel[@type='qemu-vdagent']")
    assert channel.find("source/clipboard").get("copypaste") == "yes"
    assert channel.find("source/mouse").get("mode") == "client"
    assert channel.find("target").attrib == {"type": "virtio", "name": "com.redhat.spice.0"}
    assert parse(make_spec()).find("devices/channel[@type='qemu-vdagent']") is None
    assert_valid_domain_xml(spec.to_xml(), tmp_path)


def test_it_routes_sound_to_the_vnc_display_through_one_silent_backend(tmp_path: Path) -> None:
    root = parse(make_spec(sound=True))
    audio = root.find("devices/audio")
    assert audio.attrib == {"id": "1", "type": "none"}
    assert root.find("devices/sound").get("model") == "ich6"
    assert root.find("devices/sound/audio").get("id") == "1"
    assert root.find("devices/graphics/audio").get("id") == "1"
    no_sound = parse(make_spec())
    assert no_sound.find("devices/sound") is None and no_sound.find("devices/graphics/audio") is None
    assert_valid_domain_xml(make_spec(sound=True).to_xml(), tmp_path)


def test_it_refuses_sound_or_clipboard_without_a_display() -> None:
    with pytest.raises(ValueError, match="sound"):
        make_spec(sound=True, graphics=None)
    with pytest.raises(ValueError, match="clipboard"):
        make_spec(clipboard_channel=True, graphics=None)


SECRET_UUID = "0d9f3c1e-5b7a-4c2d-9e8f-112233445566"


def test_it_renders_a_luks_disk_naming_its_secret_and_valid(tmp_path: Path) -> None:
    disk = DiskSpec("/var/lib/libvirt/images/desktop-42.qcow2", encryption_secret_uuid=SECRET_UUID.upper())
    xml = make_spec(disks=(disk,)).to_xml()
    assert_valid_domain_xml(xml, tmp_path)
    root = etree.fromstring(xml.encode())
    encryption = root.find("devices/disk/source/encryption")
    assert encryption is not None and encryption.get("format") == "luks"
    secret = encryption.find("secret")
    assert secret is not None and (secret.get("type"), secret.get("uuid")) == ("passphrase", SECRET_UUID)


def test_it_refuses_encryption_on_a_raw_disk_or_a_bad_secret_uuid() -> None:
    with pytest.raises(ValueError, match="qcow2"):
        DiskSpec("/x.raw", driver_type="raw", encryption_secret_uuid=SECRET_UUID)
    with pytest.raises(ValueError):
        DiskSpec("/x.qcow2", encryption_secret_uuid="not-a-uuid")


def test_it_renders_secrets_ephemeral_and_private(tmp_path: Path) -> None:
    xml = SecretSpec(uuid=SECRET_UUID, description=HOSTILE).to_xml()
    root = etree.fromstring(xml.encode())
    # Ephemeral: never written to /etc/libvirt/secrets; private: libvirt never hands the value back
    assert (root.get("ephemeral"), root.get("private")) == ("yes", "yes")
    assert root.findtext("uuid") == SECRET_UUID and root.findtext("description") == HOSTILE
    path = tmp_path / "secret.xml"
    path.write_text(xml)
    result = subprocess.run([virt_xml_validate(), str(path), "secret"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
