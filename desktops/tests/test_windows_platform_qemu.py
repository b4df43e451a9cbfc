"""A Windows 11-ready desktop on a real libvirtd + QEMU, with no Windows image: the firmware enforces Secure Boot,
the TPM 2.0 runs for that desktop only, its state survives a stop and goes with the desktop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from desktops.choices import DesktopState, OperationStatus, OsFamily
from desktops.models import Desktop, DesktopTemplate
from desktops.services import execution, spec
from desktops.services.requests import request_action, request_create
from hosts.hypervisor import DomainState, get_hypervisor
from hosts.services import images
from tests.services import require, require_tool
from tests.waiting import wait_until

pytestmark = pytest.mark.qemu

SECURE_BOOT_FIRMWARE = Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
SWTPM_STATE = Path("/var/lib/libvirt/swtpm")
NVRAM = Path("/var/lib/libvirt/qemu/nvram")


def _serial(desktop: Desktop) -> str:
    path = Path(spec.serial_log_path(desktop))
    return path.read_text(errors="replace") if path.exists() else ""


def _swtpm_running_for(desktop: Desktop) -> bool:
    found = subprocess.run(["pgrep", "-f", f"{desktop.domain_name}-swtpm.sock"], capture_output=True, text=True)
    return found.returncode == 0


def _run(operation) -> None:
    execution.run(operation.pk)
    operation.refresh_from_db()
    assert operation.status == OperationStatus.SUCCEEDED, operation.error


@pytest.fixture
def windows_template(qemu_host, tmp_path):
    """A Windows template on a blank disk: what an operator has before installing Windows from its ISO."""
    require(SECURE_BOOT_FIRMWARE.exists(), f"{SECURE_BOOT_FIRMWARE} (apt-get install ovmf)")
    require_tool("swtpm", "swtpm")
    blank = tmp_path / "blank-windows.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(blank), "64M"], check=True)
    image = images.import_image(blank, name=f"Blank Windows disk {tmp_path.name}", fmt="qcow2")
    images.copy_image_to_host(image=image, host=qemu_host)
    template = DesktopTemplate.objects.create(
        name="Windows 11", os_family=OsFamily.WINDOWS, image=image, vcpus=1, memory_mib=512, disk_gib=1
    )
    yield template
    hv = get_hypervisor(qemu_host.uri)
    for volume in images.volume_names(image):
        hv.volume_delete(qemu_host.storage_pool, volume)


def test_it_boots_a_windows_ready_desktop_with_secure_boot_enforced_and_its_own_tpm(
    alice, qemu_host, windows_template, settings
):
    # No OS answers the power button at the firmware's boot menu: the stop is forced after this long
    settings.DESKTOP_STOP_TIMEOUT_S = 3
    hv = get_hypervisor(qemu_host.uri)
    # The host learnt from its QEMU's domain capabilities that it can boot such a guest (the scheduler asks)
    assert (qemu_host.offers_uefi, qemu_host.offers_secure_boot, qemu_host.offers_tpm) == (True, True, True)
    desktop, operation = request_create(tenant=alice.tenant, user=alice.member, template=windows_template)
    try:
        # When the worker creates and starts it
        _run(operation)
        desktop.refresh_from_db()
        # Then libvirt chose the Secure Boot firmware with Microsoft's keys, on q35 with SMM, a SATA disk and e1000e
        dumped = subprocess.run(
            ["virsh", "-c", qemu_host.uri, "dumpxml", desktop.domain_name], capture_output=True, check=True
        )
        root = etree.fromstring(dumped.stdout)
        loader = root.find("os/loader")
        assert loader is not None and loader.get("secure") == "yes" and loader.text == str(SECURE_BOOT_FIRMWARE)
        assert "q35" in root.find("os/type").get("machine") and root.find("features/smm").get("state") == "on"
        assert root.find("devices/disk[@device='disk']/target").get("bus") == "sata"
        assert {m.get("type") for m in root.findall("devices/interface/model")} <= {"e1000e"}
        # And the firmware enforces Secure Boot: the unsigned EFI shell it falls back to is refused
        wait_until(lambda: "Security Violation" in _serial(desktop), 90, 1.0, explain=lambda: _serial(desktop)[-1500:])
        # And a TPM 2.0 emulator runs for this desktop, its state kept under the desktop's UUID
        state = SWTPM_STATE / str(desktop.domain_uuid)
        assert _swtpm_running_for(desktop) and (state / "tpm2").is_dir()
        assert (NVRAM / f"{desktop.domain_name}_VARS.fd").exists()

        # When it is stopped, its TPM and firmware variables stay (they belong to the desktop)
        _run(request_action(desktop=Desktop.objects.get(pk=desktop.pk), kind="stop", actor=alice.member))
        assert hv.state(desktop.domain_name) == DomainState.SHUTOFF
        assert not _swtpm_running_for(desktop) and (state / "tpm2").is_dir()
        assert (NVRAM / f"{desktop.domain_name}_VARS.fd").exists()

        # When it is deleted, both go with it
        _run(request_action(desktop=Desktop.objects.get(pk=desktop.pk), kind="delete", actor=alice.member))
        assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.DELETED
        assert not state.exists() and not (NVRAM / f"{desktop.domain_name}_VARS.fd").exists()
    finally:
        execution.remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)
