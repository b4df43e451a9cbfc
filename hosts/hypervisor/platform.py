"""The guest's platform in domain XML: firmware (BIOS, UEFI, UEFI with Secure Boot), TPM 2.0, Hyper-V, timers.

What Windows 11 asks of a PC (UEFI with Secure Boot, a TPM 2.0) and what makes Windows run well under KVM
(Hyper-V enlightenments, its timer policy). FINDINGS: libvirt picks the Secure Boot firmware with Microsoft's
keys enrolled from `<os firmware='efi'>` plus the two firmware features, Secure Boot needs SMM (so the q35
machine), swtpm keeps the TPM's state per domain UUID (a new domain = a fresh TPM; undefine with NVRAM
deletes it), and QEMU refuses Hyper-V enlightenments under software emulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxml import etree

Firmware = Literal["bios", "uefi", "uefi-secure"]
FIRMWARES: tuple[Firmware, ...] = ("bios", "uefi", "uefi-secure")

# Hyper-V enlightenments Windows uses to run well as a guest; each is a plain on/off feature except spinlocks.
_HYPERV_FEATURES = ("relaxed", "vapic", "vpindex", "runtime", "synic", "stimer", "frequencies")
_HYPERV_SPINLOCK_RETRIES = "8191"


@dataclass(frozen=True)
class PlatformSpec:
    """Firmware, TPM and Windows' tuning of one domain; the default is the plain BIOS PC Linux guests get."""

    firmware: Firmware = "bios"
    tpm: bool = False
    # Hyper-V enlightenments: only when the host really runs KVM (DomainSpec checks).
    hyperv: bool = False
    # Windows' timer policy: RTC catches up, PIT delays, no HPET (plus the Hyper-V clock with hyperv).
    windows_timers: bool = False

    def __post_init__(self) -> None:
        if self.firmware not in FIRMWARES:
            raise ValueError(f"firmware must be one of {', '.join(FIRMWARES)}")

    @property
    def uefi(self) -> bool:
        return self.firmware != "bios"

    @property
    def secure_boot(self) -> bool:
        return self.firmware == "uefi-secure"

    def os_attributes(self) -> dict[str, str]:
        """Attributes of <os>: libvirt chooses the firmware file from what the features below ask for."""
        return {"firmware": "efi"} if self.uefi else {}

    def os_children(self) -> list[etree._Element]:
        """The <firmware> features inside <os>: Secure Boot with the enrolled (Microsoft) keys, or explicitly off."""
        if not self.uefi:
            return []
        enabled = "yes" if self.secure_boot else "no"
        firmware = etree.Element("firmware")
        etree.SubElement(firmware, "feature", enabled=enabled, name="enrolled-keys")
        etree.SubElement(firmware, "feature", enabled=enabled, name="secure-boot")
        return [firmware]

    def feature_children(self) -> list[etree._Element]:
        """Inside <features>: SMM (Secure Boot's variable store needs it) and the Hyper-V enlightenments."""
        children = []
        if self.hyperv:
            hyperv = etree.Element("hyperv", mode="custom")
            for name in _HYPERV_FEATURES:
                etree.SubElement(hyperv, name, state="on")
            etree.SubElement(hyperv, "spinlocks", state="on", retries=_HYPERV_SPINLOCK_RETRIES)
            children.append(hyperv)
        if self.secure_boot:
            children.append(etree.Element("smm", state="on"))
        return children

    def clock_children(self) -> list[etree._Element]:
        """The <timer>s inside <clock>."""
        if not self.windows_timers:
            return []
        timers = [
            etree.Element("timer", name="rtc", tickpolicy="catchup"),
            etree.Element("timer", name="pit", tickpolicy="delay"),
            etree.Element("timer", name="hpet", present="no"),
        ]
        if self.hyperv:
            timers.append(etree.Element("timer", name="hypervclock", present="yes"))
        return timers

    def device_children(self) -> list[etree._Element]:
        """Inside <devices>: the emulated TPM 2.0 (swtpm, state per domain)."""
        if not self.tpm:
            return []
        tpm = etree.Element("tpm", model="tpm-crb")
        etree.SubElement(tpm, "backend", type="emulator", version="2.0")
        return [tpm]


@dataclass(frozen=True)
class PlatformSupport:
    """What a host's QEMU offers guests (libvirt's domain capabilities): what Windows 11 needs of a PC."""

    uefi: bool
    secure_boot: bool
    tpm: bool

    @property
    def windows_ready(self) -> bool:
        return self.uefi and self.secure_boot and self.tpm

    def missing(self) -> list[str]:
        """What a Windows 11 guest would miss here, each with the Debian package that brings it."""
        gaps = []
        if not (self.uefi and self.secure_boot):
            gaps.append("UEFI firmware with Secure Boot (install ovmf)")
        if not self.tpm:
            gaps.append("a TPM 2.0 emulator (install swtpm)")
        return gaps


def parse_platform_support(xml: str) -> PlatformSupport:
    """Read firmware and TPM support from libvirt's <domainCapabilities> document."""
    root = etree.fromstring(xml.encode(), parser=etree.XMLParser(resolve_entities=False, no_network=True))
    firmware = {v.text for v in root.findall("os/enum[@name='firmware']/value")}
    loaders = root.find("os/loader[@supported='yes']")
    secure = loaders is not None and "yes" in {v.text for v in loaders.findall("enum[@name='secure']/value")}
    tpm = root.find("devices/tpm[@supported='yes']")
    emulated = tpm is not None and "emulator" in {v.text for v in tpm.findall("enum[@name='backendModel']/value")}
    return PlatformSupport(uefi="efi" in firmware, secure_boot=secure, tpm=emulated)
