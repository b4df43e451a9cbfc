"""What a template's guest needs of its virtual PC, from its OS family and the operator's overrides.

Windows 11 refuses to install without UEFI, Secure Boot and a TPM 2.0, and sees neither a virtio disk nor a virtio
NIC until the virtio-win drivers are in: so Windows gets the q35 machine with Secure Boot and a TPM, a SATA disk
and an e1000e NIC (virtio once the template says its drivers are installed), local time with Windows' timers, and
the Hyper-V enlightenments where the host really runs KVM. Linux keeps the plain BIOS PC with virtio everything.
The template's firmware and TPM fields override the family's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

from desktops.choices import OsFamily
from hosts.hypervisor import Firmware, PlatformSpec

Q35 = "q35"


@dataclass(frozen=True)
class GuestPlatform:
    """The domain settings that follow from the guest's OS."""

    platform: PlatformSpec
    machine: str | None
    disk_bus: Literal["virtio", "sata"]
    nic_model: str
    clock_offset: Literal["utc", "localtime"]
    video_model: Literal["vga", "virtio"]

    @property
    def disk_target(self) -> str:
        """The system disk's target device (the seed CD-ROM and home disks take the next ones)."""
        return "sda" if self.disk_bus == "sata" else "vda"


def firmware_and_tpm(template) -> tuple[Firmware, bool]:
    """The guest's firmware and whether it has a TPM: what its host must offer (the scheduler's platform filter)."""
    windows = template.os_family == OsFamily.WINDOWS
    firmware: Firmware = template.firmware or ("uefi-secure" if windows else "bios")
    return firmware, windows if template.tpm is None else template.tpm


class PlacementNeeds(TypedDict):
    firmware: str
    tpm: bool


def placement_needs(template) -> PlacementNeeds:
    """The PlacementRequest fields that keep this template's desktops on hosts that can boot them."""
    firmware, tpm = firmware_and_tpm(template)
    return {"firmware": firmware, "tpm": tpm}


def guest_platform(template, *, virt_type: str) -> GuestPlatform:
    """The platform a desktop of this template gets on a host of this virt type (kvm or qemu)."""
    windows = template.os_family == OsFamily.WINDOWS
    firmware, tpm = firmware_and_tpm(template)
    virtio = not windows or template.virtio_drivers
    return GuestPlatform(
        platform=PlatformSpec(
            firmware=firmware, tpm=tpm, hyperv=windows and virt_type == "kvm", windows_timers=windows
        ),
        # Secure Boot needs SMM, which only q35 has; Windows gets q35 either way (PCIe, a modern chipset).
        machine=Q35 if windows or firmware == "uefi-secure" else None,
        disk_bus="virtio" if virtio else "sata",
        nic_model="virtio" if virtio else "e1000e",
        clock_offset="localtime" if windows else "utc",
        video_model="virtio" if windows else "vga",
    )
