"""The virtual PC a template's guest gets: from its OS family, the host's virt type and the template's overrides."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from desktops.choices import OsFamily
from desktops.services.guest_platform import guest_platform


def _template(os_family=OsFamily.LINUX, firmware="", tpm=None, virtio_drivers=False):
    return SimpleNamespace(os_family=os_family, firmware=firmware, tpm=tpm, virtio_drivers=virtio_drivers)


def test_a_linux_guest_keeps_the_plain_bios_pc_with_virtio():
    guest = guest_platform(_template(), virt_type="kvm")
    assert (guest.platform.firmware, guest.platform.tpm, guest.platform.hyperv) == ("bios", False, False)
    assert (guest.machine, guest.disk_bus, guest.disk_target, guest.nic_model) == (None, "virtio", "vda", "virtio")
    assert (guest.clock_offset, guest.video_model, guest.platform.windows_timers) == ("utc", "vga", False)


@pytest.mark.parametrize(("virt_type", "hyperv"), [("kvm", True), ("qemu", False)])
def test_a_windows_guest_gets_what_windows_11_asks_for(virt_type, hyperv):
    guest = guest_platform(_template(OsFamily.WINDOWS), virt_type=virt_type)
    assert (guest.platform.firmware, guest.platform.tpm, guest.machine) == ("uefi-secure", True, "q35")
    # Hyper-V enlightenments only where the host really runs KVM (QEMU refuses them under emulation)
    assert guest.platform.hyperv is hyperv and guest.platform.windows_timers
    # No virtio drivers in a fresh Windows: SATA and e1000e, local time, virtio video
    assert (guest.disk_bus, guest.disk_target, guest.nic_model) == ("sata", "sda", "e1000e")
    assert (guest.clock_offset, guest.video_model) == ("localtime", "virtio")


def test_a_windows_guest_with_its_virtio_drivers_gets_virtio_disk_and_network():
    guest = guest_platform(_template(OsFamily.WINDOWS, virtio_drivers=True), virt_type="kvm")
    assert (guest.disk_bus, guest.disk_target, guest.nic_model) == ("virtio", "vda", "virtio")
    assert guest.platform.secure_boot and guest.platform.tpm


@pytest.mark.parametrize(
    ("template", "firmware", "tpm", "machine"),
    [
        (_template(OsFamily.WINDOWS, firmware="uefi", tpm=False), "uefi", False, "q35"),
        (_template(OsFamily.WINDOWS, firmware="bios"), "bios", True, "q35"),
        (_template(firmware="uefi-secure"), "uefi-secure", False, "q35"),
        (_template(firmware="uefi", tpm=True), "uefi", True, None),
    ],
)
def test_the_templates_firmware_and_tpm_override_the_os_familys(template, firmware, tpm, machine):
    guest = guest_platform(template, virt_type="qemu")
    assert (guest.platform.firmware, guest.platform.tpm, guest.machine) == (firmware, tpm, machine)
