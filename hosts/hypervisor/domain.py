"""Typed libvirt domain configuration: frozen dataclasses that render domain XML (no I/O)."""

from __future__ import annotations

import re
import uuid as uuid_lib
from dataclasses import dataclass, field, replace
from typing import Literal

from lxml import etree

from hosts.hypervisor.platform import PlatformSpec

__all__ = [
    "DESKTOP_XMLNS",
    "DESKTOP_XMLNS_PREFIX",
    "DesktopMetadata",
    "DiskSpec",
    "DomainSpec",
    "GraphicsSpec",
    "HostdevSpec",
    "InterfaceSpec",
    "MdevSpec",
    "SecretSpec",
    "parse_desktop_metadata",
    "parse_metadata",
    "parse_xml",
]

DESKTOP_XMLNS = "https://quetzal.dev/xmlns/desktop/1.0"
DESKTOP_XMLNS_PREFIX = "quetzal"

VirtType = Literal["kvm", "qemu"]
DiskBus = Literal["virtio", "sata", "scsi", "ide", "usb"]
DiskDriverType = Literal["qcow2", "raw"]
DiskDevice = Literal["disk", "cdrom"]

_TARGET_DEV_RE = re.compile(r"^(vd|sd|hd|xvd)[a-z]{1,3}$")
_INSTALLATION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_PCI_ADDR_RE = re.compile(
    r"^(?:(?P<domain>[0-9a-f]{4}):)?(?P<bus>[0-9a-f]{2}):(?P<slot>[0-9a-f]{2})\.(?P<function>[0-7])$"
)
_SLUG_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# virtio-blk passes at most 20 bytes of serial to the guest (/sys/block/*/serial).
_SERIAL_RE = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
_ID_RE = re.compile(r"^[0-9]{1,18}$")
# The one <audio> backend a desktop with sound has, shared by its sound card and its VNC display.
SOUND_AUDIO_ID = 1

# A hardened parser for XML we read back from libvirt: no entities, no network, no DTDs.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)


def parse_xml(xml: str | bytes) -> etree._Element:
    """Parse an XML document with external entities and network access disabled."""
    data = xml.encode() if isinstance(xml, str) else xml
    return etree.fromstring(data, parser=_PARSER)


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    """Append a child element; values go through lxml, which escapes them."""
    el = etree.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _require(ok: bool, message: str) -> None:
    """Raise ValueError with message unless ok."""
    if not ok:
        raise ValueError(message)


def _no_control_chars(value: str, what: str) -> None:
    """Reject characters XML 1.0 cannot carry and newlines libvirt forbids in names."""
    _require(
        not any(ord(c) < 0x20 and c not in "\t" for c in value),
        f"{what} must not contain control characters",
    )


@dataclass(frozen=True)
class DiskSpec:
    """A file-backed disk or CD-ROM."""

    path: str
    target_dev: str = "vda"
    bus: DiskBus = "virtio"
    driver_type: DiskDriverType = "qcow2"
    device: DiskDevice = "disk"
    readonly: bool = False
    cache: Literal["none", "writeback", "writethrough", "unsafe"] | None = None
    # How the guest finds the disk: it names hot-plugged disks unpredictably (FINDINGS), a serial it keeps.
    serial: str | None = None
    # A LUKS-encrypted qcow2: QEMU opens it with the passphrase of the libvirt secret of this UUID.
    encryption_secret_uuid: str | None = None

    def __post_init__(self) -> None:
        _require(self.path.startswith("/"), "disk path must be absolute")
        _require(self.serial is None or bool(_SERIAL_RE.fullmatch(self.serial)), "bad disk serial")
        if self.encryption_secret_uuid is not None:
            object.__setattr__(self, "encryption_secret_uuid", str(uuid_lib.UUID(self.encryption_secret_uuid)))
            _require(self.driver_type == "qcow2", "only qcow2 disks carry LUKS encryption here")
        _no_control_chars(self.path, "disk path")
        _require(bool(_TARGET_DEV_RE.fullmatch(self.target_dev)), "bad disk target_dev")
        _require(self.bus in ("virtio", "sata", "scsi", "ide", "usb"), "bad disk bus")
        _require(self.driver_type in ("qcow2", "raw"), "bad disk driver_type")
        _require(self.device in ("disk", "cdrom"), "bad disk device")
        _require(self.device != "cdrom" or self.bus != "virtio", "a cdrom cannot be on virtio")

    @classmethod
    def cloud_init_seed(cls, path: str, target_dev: str = "sda") -> DiskSpec:
        """The NoCloud seed ISO (volume label cidata) as a read-only SATA CD-ROM."""
        return cls(
            path=path,
            target_dev=target_dev,
            bus="sata",
            driver_type="raw",
            device="cdrom",
            readonly=True,
        )

    def to_element(self) -> etree._Element:
        """The <disk> element."""
        # A cdrom is read-only whatever the flag says; internal snapshots must skip it.
        readonly = self.readonly or self.device == "cdrom"
        attrs = {"type": "file", "device": self.device}
        if readonly:
            attrs["snapshot"] = "no"
        disk = etree.Element("disk", attrs)
        driver = {"name": "qemu", "type": self.driver_type}
        if self.cache:
            driver["cache"] = self.cache
        _sub(disk, "driver", **driver)
        source = _sub(disk, "source", file=self.path)
        if self.encryption_secret_uuid is not None:
            encryption = _sub(source, "encryption", format="luks")
            _sub(encryption, "secret", type="passphrase", uuid=self.encryption_secret_uuid)
        _sub(disk, "target", dev=self.target_dev, bus=self.bus)
        if self.serial is not None:
            _sub(disk, "serial", self.serial)
        if readonly:
            _sub(disk, "readonly")
        return disk


@dataclass(frozen=True)
class SecretSpec:
    """An ephemeral, private libvirt secret: never written to the host's disk, never read back."""

    uuid: str
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "uuid", str(uuid_lib.UUID(self.uuid)))
        _no_control_chars(self.description, "secret description")

    def to_xml(self) -> str:
        """The <secret> document."""
        # ephemeral='yes': a persistent secret lands in /etc/libvirt/secrets/<uuid>.base64 in plain
        # base64 even when private (FINDINGS). No <usage>: the disk names the secret by UUID.
        root = etree.Element("secret", ephemeral="yes", private="yes")
        _sub(root, "uuid", self.uuid)
        if self.description:
            _sub(root, "description", self.description)
        return etree.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class InterfaceSpec:
    """A NIC on a libvirt network or a host bridge."""

    network: str | None = None
    bridge: str | None = None
    model: str = "virtio"
    mac: str | None = None
    # Port isolation on the bridge: the guest's frames never reach another isolated port (None: the network's).
    isolated: bool | None = None
    # The nwfilter instantiated on the guest's tap (anti-spoofing, firewall).
    filter: str | None = None

    def __post_init__(self) -> None:
        _require(
            (self.network is None) != (self.bridge is None),
            "an interface needs exactly one of network or bridge",
        )
        for value in (self.network, self.bridge, self.model, self.filter):
            if value is not None:
                _require(bool(value), "interface names must not be empty")
                _no_control_chars(value, "interface name")
        if self.mac is not None:
            object.__setattr__(self, "mac", self.mac.lower())
        _require(self.mac is None or bool(_MAC_RE.fullmatch(self.mac)), "bad MAC address")

    def to_element(self) -> etree._Element:
        """The <interface> element."""
        kind = "network" if self.network is not None else "bridge"
        iface = etree.Element("interface", type=kind)
        if self.mac:
            _sub(iface, "mac", address=self.mac)
        if self.network is not None:
            _sub(iface, "source", network=self.network)
        else:
            _sub(iface, "source", bridge=str(self.bridge))
        _sub(iface, "model", type=self.model)
        if self.filter is not None:
            _sub(iface, "filterref", filter=self.filter)
        if self.isolated is not None:
            _sub(iface, "port", isolated="yes" if self.isolated else "no")
        return iface


@dataclass(frozen=True)
class GraphicsSpec:
    """A VNC display listening on the host's management address only."""

    listen_address: str = "127.0.0.1"
    autoport: bool = True
    port: int | None = None
    password: str | None = None
    video_model: Literal["vga", "virtio", "qxl", "cirrus", "bochs"] = "vga"
    tablet: bool = True
    # The id of an <audio> backend whose output QEMU's VNC server streams to clients that ask for it.
    audio_id: int | None = None

    def __post_init__(self) -> None:
        _require(bool(self.listen_address), "listen_address must not be empty")
        _no_control_chars(self.listen_address, "listen_address")
        if self.autoport:
            _require(self.port is None, "port must be unset when autoport is on")
        else:
            _require(
                self.port is not None and 5900 <= self.port <= 65535,
                "a fixed VNC port must be within 5900..65535",
            )
        if self.password is not None:
            # QEMU's VNC authentication uses DES and silently truncates to 8 characters.
            _require(1 <= len(self.password) <= 8, "VNC password must be 1..8 characters")
            _no_control_chars(self.password, "VNC password")

    def to_elements(self) -> list[etree._Element]:
        """The <graphics>, <video> and (optionally) tablet <input> elements."""
        attrs = {
            "type": "vnc",
            "autoport": "yes" if self.autoport else "no",
            "port": "-1" if self.autoport else str(self.port),
            "listen": self.listen_address,
        }
        if self.password is not None:
            attrs["passwd"] = self.password
        graphics = etree.Element("graphics", attrs)
        _sub(graphics, "listen", type="address", address=self.listen_address)
        if self.audio_id is not None:
            _sub(graphics, "audio", id=str(self.audio_id))
        video = etree.Element("video")
        _sub(video, "model", type=self.video_model, heads="1", primary="yes")
        elements = []
        if self.tablet:
            # An absolute pointer keeps the browser and guest cursors aligned over VNC.
            elements.append(etree.Element("input", type="tablet", bus="usb"))
        elements += [graphics, video]
        return elements


@dataclass(frozen=True)
class HostdevSpec:
    """A PCI device passed through to the guest (e.g. a whole GPU)."""

    bus: int
    slot: int
    function: int
    domain: int = 0
    managed: bool = True

    def __post_init__(self) -> None:
        _require(0 <= self.domain <= 0xFFFF, "bad PCI domain")
        _require(0 <= self.bus <= 0xFF, "bad PCI bus")
        _require(0 <= self.slot <= 0x1F, "bad PCI slot")
        _require(0 <= self.function <= 7, "bad PCI function")

    @classmethod
    def from_address(cls, address: str, *, managed: bool = True) -> HostdevSpec:
        """Build from a PCI address such as "0000:01:00.0" or "01:00.0"."""
        m = _PCI_ADDR_RE.fullmatch(address.lower())
        _require(m is not None, f"bad PCI address {address!r}")
        assert m is not None
        return cls(
            domain=int(m["domain"] or "0", 16),
            bus=int(m["bus"], 16),
            slot=int(m["slot"], 16),
            function=int(m["function"], 16),
            managed=managed,
        )

    @property
    def address(self) -> str:
        """The canonical PCI address string."""
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    def to_element(self) -> etree._Element:
        """The <hostdev type="pci"> element."""
        hostdev = etree.Element("hostdev", mode="subsystem", type="pci", managed="yes" if self.managed else "no")
        source = _sub(hostdev, "source")
        _sub(
            source,
            "address",
            domain=f"0x{self.domain:04x}",
            bus=f"0x{self.bus:02x}",
            slot=f"0x{self.slot:02x}",
            function=f"0x{self.function:x}",
        )
        return hostdev


@dataclass(frozen=True)
class MdevSpec:
    """A mediated device (vGPU slice) that already exists on the host, by UUID."""

    uuid: str
    model: Literal["vfio-pci", "vfio-ccw", "vfio-ap"] = "vfio-pci"

    def __post_init__(self) -> None:
        object.__setattr__(self, "uuid", str(uuid_lib.UUID(self.uuid)))
        _require(self.model in ("vfio-pci", "vfio-ccw", "vfio-ap"), "bad mdev model")

    def to_element(self) -> etree._Element:
        """The <hostdev type="mdev"> element."""
        hostdev = etree.Element("hostdev", mode="subsystem", type="mdev", model=self.model)
        source = _sub(hostdev, "source")
        _sub(source, "address", uuid=self.uuid)
        return hostdev


@dataclass(frozen=True)
class DomainSpec:
    """A whole desktop VM; to_xml() gives the libvirt domain XML."""

    name: str
    uuid: str
    desktop_id: int
    tenant_slug: str
    vcpus: int
    memory_mib: int
    virt_type: VirtType = "kvm"
    arch: str = "x86_64"
    machine: str | None = None
    disks: tuple[DiskSpec, ...] = ()
    interfaces: tuple[InterfaceSpec, ...] = ()
    graphics: GraphicsSpec | None = field(default_factory=GraphicsSpec)
    serial_log_path: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    hostdevs: tuple[HostdevSpec, ...] = ()
    mdevs: tuple[MdevSpec, ...] = ()
    title: str | None = None
    description: str | None = None
    cpu_mode: Literal["host-passthrough", "host-model", "maximum"] | None = None
    clock_offset: Literal["utc", "localtime"] = "utc"
    guest_agent: bool = False
    # The clipboard channel QEMU itself serves (qemu-vdagent): the VNC clipboard reaches spice-vdagent.
    clipboard_channel: bool = False
    # An HDA sound card whose output goes to the VNC audio stream (needs graphics).
    sound: bool = False
    # Firmware, TPM, Hyper-V and timers (hosts.hypervisor.platform): a plain BIOS PC unless the guest needs more.
    platform: PlatformSpec = field(default_factory=PlatformSpec)
    # The installation that owns the domain (DesktopMetadata); None: one made before installations were named.
    installation: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.name) and "/" not in self.name, "domain name must be non-empty, no /")
        _no_control_chars(self.name, "domain name")
        object.__setattr__(self, "uuid", str(uuid_lib.UUID(self.uuid)))
        _require(
            isinstance(self.desktop_id, int) and not isinstance(self.desktop_id, bool) and self.desktop_id > 0,
            "desktop_id must be a positive int",
        )
        _require(bool(_SLUG_RE.fullmatch(self.tenant_slug)), "bad tenant_slug")
        _require(self.installation is None or bool(_INSTALLATION_RE.fullmatch(self.installation)), "bad installation")
        _require(self.vcpus >= 1, "vcpus must be >= 1")
        _require(self.memory_mib >= 1, "memory_mib must be >= 1")
        _require(self.virt_type in ("kvm", "qemu"), "virt_type must be kvm or qemu")
        _require(bool(self.arch), "arch must not be empty")
        _require(self.kernel is not None or (self.initrd is None), "initrd needs a kernel")
        _require(self.kernel is not None or (self.cmdline is None), "cmdline needs a kernel")
        for value, what in (
            (self.kernel, "kernel"),
            (self.initrd, "initrd"),
            (self.serial_log_path, "serial_log_path"),
        ):
            if value is not None:
                _require(value.startswith("/"), f"{what} must be an absolute path")
        for value, what in ((self.cmdline, "cmdline"), (self.title, "title")):
            if value is not None:
                _no_control_chars(value, what)
        if self.description is not None:
            # Free text may span lines, but XML 1.0 cannot carry the other control characters.
            _no_control_chars(self.description.replace("\n", " ").replace("\r", " "), "description")
        _require(not self.sound or self.graphics is not None, "sound is streamed over VNC: it needs graphics")
        _require(not self.clipboard_channel or self.graphics is not None, "the clipboard channel needs graphics")
        # QEMU refuses Hyper-V enlightenments under software emulation; Secure Boot's SMM needs the q35 machine.
        _require(not self.platform.hyperv or self.virt_type == "kvm", "Hyper-V enlightenments need KVM")
        _require(not self.platform.secure_boot or "q35" in (self.machine or ""), "Secure Boot needs the q35 machine")
        targets = [d.target_dev for d in self.disks]
        _require(len(targets) == len(set(targets)), "disk target_dev values must be unique")
        # Tuples keep the spec hashable and really immutable even if a caller passed a list.
        for name in ("disks", "interfaces", "hostdevs", "mdevs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def metadata(self) -> DesktopMetadata:
        """What this spec stores in the domain's <metadata>."""
        return DesktopMetadata(desktop_id=self.desktop_id, tenant_slug=self.tenant_slug, installation=self.installation)

    def to_element(self) -> etree._Element:
        """The <domain> element."""
        dom = etree.Element("domain", type=self.virt_type)
        _sub(dom, "name", self.name)
        _sub(dom, "uuid", self.uuid)
        if self.title is not None:
            _sub(dom, "title", self.title)
        if self.description is not None:
            _sub(dom, "description", self.description)
        metadata = _sub(dom, "metadata")
        metadata.append(self.metadata.to_element())
        _sub(dom, "memory", str(self.memory_mib), unit="MiB")
        _sub(dom, "currentMemory", str(self.memory_mib), unit="MiB")
        _sub(dom, "vcpu", str(self.vcpus), placement="static")
        dom.append(self._os_element())
        features = _sub(dom, "features")
        _sub(features, "acpi")
        _sub(features, "apic")
        features.extend(self.platform.feature_children())
        if self.cpu_mode is not None:
            _sub(dom, "cpu", mode=self.cpu_mode)
        clock = _sub(dom, "clock", offset=self.clock_offset)
        clock.extend(self.platform.clock_children())
        _sub(dom, "on_poweroff", "destroy")
        _sub(dom, "on_reboot", "restart")
        _sub(dom, "on_crash", "destroy")
        dom.append(self._devices_element())
        return dom

    def to_xml(self) -> str:
        """The domain XML document as a string."""
        return etree.tostring(self.to_element(), encoding="unicode", pretty_print=True)

    def _os_element(self) -> etree._Element:
        """The <os> element: direct kernel boot when a kernel is set, else boot from disk."""
        os_el = etree.Element("os", self.platform.os_attributes())
        type_attrs = {"arch": self.arch}
        if self.machine:
            type_attrs["machine"] = self.machine
        _sub(os_el, "type", "hvm", **type_attrs)
        os_el.extend(self.platform.os_children())
        if self.kernel is not None:
            _sub(os_el, "kernel", self.kernel)
            if self.initrd is not None:
                _sub(os_el, "initrd", self.initrd)
            if self.cmdline is not None:
                _sub(os_el, "cmdline", self.cmdline)
        else:
            _sub(os_el, "boot", dev="hd")
        return os_el

    def _devices_element(self) -> etree._Element:
        """The <devices> element."""
        devices = etree.Element("devices")
        for disk in self.disks:
            devices.append(disk.to_element())
        for iface in self.interfaces:
            devices.append(iface.to_element())
        if self.serial_log_path is not None:
            # A file-backed serial port lets the host read the guest's console without a client.
            serial = _sub(devices, "serial", type="file")
            _sub(serial, "source", path=self.serial_log_path)
            _sub(serial, "target", port="0")
            console = _sub(devices, "console", type="file")
            _sub(console, "source", path=self.serial_log_path)
            _sub(console, "target", type="serial", port="0")
        else:
            serial = _sub(devices, "serial", type="pty")
            _sub(serial, "target", port="0")
            console = _sub(devices, "console", type="pty")
            _sub(console, "target", type="serial", port="0")
        if self.guest_agent:
            channel = _sub(devices, "channel", type="unix")
            _sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
        if self.clipboard_channel:
            vdagent = _sub(devices, "channel", type="qemu-vdagent")
            source = _sub(vdagent, "source")
            _sub(source, "clipboard", copypaste="yes")
            _sub(source, "mouse", mode="client")
            _sub(vdagent, "target", type="virtio", name="com.redhat.spice.0")
        if self.graphics is not None:
            graphics = self.graphics
            if self.sound and graphics.audio_id is None:
                graphics = replace(graphics, audio_id=SOUND_AUDIO_ID)
            for el in graphics.to_elements():
                devices.append(el)
        if self.sound:
            sound = _sub(devices, "sound", model="ich6")
            _sub(sound, "audio", id=str(SOUND_AUDIO_ID))
        devices.extend(self.platform.device_children())
        for hostdev in self.hostdevs:
            devices.append(hostdev.to_element())
        for mdev in self.mdevs:
            devices.append(mdev.to_element())
        # Free page reporting: the guest hands pages it freed back to the host, so idle desktops pack denser.
        balloon = _sub(devices, "memballoon", model="virtio", freePageReporting="on")
        # A stats period makes the guest report unused memory, which DomainStats needs.
        _sub(balloon, "stats", period="10")
        if self.sound:
            # No host sound device: the samples only leave through the VNC audio stream.
            _sub(devices, "audio", id=str(SOUND_AUDIO_ID), type="none")
        return devices


@dataclass(frozen=True)
class DesktopMetadata:
    """The Quetzal facts stored inside a domain's <metadata>.

    `installation` names the Quetzal installation that made the domain: several (a staging and a production, a
    test run beside `make run`) may share a host, and one must never take another's domains for its orphans.
    """

    desktop_id: int
    tenant_slug: str | None = None
    installation: str | None = None

    def to_element(self) -> etree._Element:
        """The <quetzal:desktop> element."""
        attrs = {"id": str(self.desktop_id)}
        if self.tenant_slug is not None:
            attrs["tenant"] = self.tenant_slug
        if self.installation is not None:
            attrs["installation"] = self.installation
        return etree.Element(f"{{{DESKTOP_XMLNS}}}desktop", attrs, nsmap={DESKTOP_XMLNS_PREFIX: DESKTOP_XMLNS})


def parse_metadata(xml: str | bytes) -> DesktopMetadata | None:
    """Read our metadata from a domain XML or from the bare element virDomainGetMetadata returns."""
    try:
        root = parse_xml(xml)
    except etree.XMLSyntaxError:
        return None
    if etree.QName(root).localname == "domain":
        found = root.find(f"metadata/{{{DESKTOP_XMLNS}}}desktop")
        if found is None:
            return None
        root = found
    elif etree.QName(root).localname != "desktop":
        return None
    raw_id = root.get("id", "")
    if not _ID_RE.fullmatch(raw_id) or int(raw_id) <= 0:
        return None
    installation = root.get("installation")
    return DesktopMetadata(
        desktop_id=int(raw_id),
        tenant_slug=root.get("tenant"),
        # An unreadable name is still someone else's: kept as it is, bounded.
        installation=installation[:64] if installation is not None else None,
    )


def parse_desktop_metadata(xml: str | bytes) -> int | None:
    """The desktop id stored in a domain XML's Quetzal metadata, or None if it is not ours."""
    meta = parse_metadata(xml)
    return meta.desktop_id if meta is not None else None
