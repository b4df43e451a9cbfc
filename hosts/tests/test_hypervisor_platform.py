"""The guest platform in domain XML: UEFI with Secure Boot, a TPM 2.0, Hyper-V and Windows' timers."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from hosts.hypervisor import DiskSpec, PlatformSpec
from hosts.hypervisor.platform import parse_platform_support
from hosts.tests.test_hypervisor_domain import assert_valid_domain_xml, make_spec, parse

WINDOWS = PlatformSpec(firmware="uefi-secure", tpm=True, hyperv=True, windows_timers=True)


def test_it_renders_a_windows_11_ready_domain_that_libvirt_schema_accepts(tmp_path: Path) -> None:
    spec = make_spec(machine="q35", platform=WINDOWS, disks=(DiskSpec("/d.qcow2", target_dev="sda", bus="sata"),))
    assert_valid_domain_xml(spec.to_xml(), tmp_path)
    root = parse(spec)
    # UEFI, with Secure Boot and the enrolled keys libvirt picks the Microsoft-keyed firmware for
    assert root.find("os").get("firmware") == "efi"
    features = {f.get("name"): f.get("enabled") for f in root.findall("os/firmware/feature")}
    assert features == {"enrolled-keys": "yes", "secure-boot": "yes"}
    assert root.find("os/type").get("machine") == "q35"
    assert root.find("features/smm").get("state") == "on"
    # A TPM 2.0 emulated by swtpm
    tpm = root.find("devices/tpm")
    assert tpm.get("model") == "tpm-crb" and tpm.find("backend").attrib == {"type": "emulator", "version": "2.0"}
    # Hyper-V enlightenments and Windows' timers, the Hyper-V clock among them
    hyperv = root.find("features/hyperv")
    assert {child.tag for child in hyperv} >= {"relaxed", "vapic", "spinlocks", "vpindex", "synic", "stimer"}
    assert hyperv.find("spinlocks").get("retries") == "8191"
    timers = {t.get("name"): dict(t.attrib) for t in root.findall("clock/timer")}
    assert timers["rtc"]["tickpolicy"] == "catchup" and timers["pit"]["tickpolicy"] == "delay"
    assert timers["hpet"]["present"] == "no" and timers["hypervclock"]["present"] == "yes"


def test_it_renders_uefi_without_secure_boot_as_explicitly_off(tmp_path: Path) -> None:
    spec = make_spec(platform=PlatformSpec(firmware="uefi"))
    assert_valid_domain_xml(spec.to_xml(), tmp_path)
    root = parse(spec)
    assert root.find("os").get("firmware") == "efi"
    features = {f.get("name"): f.get("enabled") for f in root.findall("os/firmware/feature")}
    assert features == {"enrolled-keys": "no", "secure-boot": "no"}
    assert root.find("features/smm") is None and root.find("devices/tpm") is None


def test_it_keeps_the_plain_bios_pc_by_default() -> None:
    root = parse(make_spec())
    assert root.find("os").get("firmware") is None and root.find("os/firmware") is None
    assert root.find("features/smm") is None and root.find("features/hyperv") is None
    assert root.find("devices/tpm") is None and root.findall("clock/timer") == []


def test_it_gives_windows_timers_without_the_hyperv_clock_under_emulation() -> None:
    spec = make_spec(virt_type="qemu", platform=PlatformSpec(windows_timers=True))
    names = [t.get("name") for t in parse(spec).findall("clock/timer")]
    assert names == ["rtc", "pit", "hpet"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"virt_type": "qemu", "machine": "q35", "platform": WINDOWS}, "Hyper-V enlightenments need KVM"),
        ({"machine": "pc", "platform": PlatformSpec(firmware="uefi-secure")}, "Secure Boot needs the q35 machine"),
        ({"platform": PlatformSpec(firmware="uefi-secure")}, "Secure Boot needs the q35 machine"),
    ],
)
def test_it_refuses_a_platform_the_host_or_machine_cannot_run(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(**overrides)


def test_it_refuses_an_unknown_firmware() -> None:
    with pytest.raises(ValueError, match="firmware must be one of bios, uefi, uefi-secure"):
        PlatformSpec(firmware="coreboot")  # type: ignore[arg-type]


def test_it_puts_the_tpm_among_the_devices_once() -> None:
    devices = parse(make_spec(platform=PlatformSpec(tpm=True))).find("devices")
    assert [el.tag for el in devices].count("tpm") == 1
    assert etree.tostring(devices).count(b"<tpm ") == 1


def _capabilities(firmware: str, secure: str, tpm_backends: str) -> str:
    """libvirt's <domainCapabilities>, cut to what matters here (shaped as libvirt 9 prints it)."""
    return f"""<domainCapabilities><os supported='yes'>
      <enum name='firmware'>{firmware}</enum>
      <loader supported='yes'><value>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</value>
        <enum name='secure'>{secure}</enum></loader></os>
      <devices><tpm supported='yes'><enum name='model'><value>tpm-crb</value></enum>
        <enum name='backendModel'>{tpm_backends}</enum></tpm></devices></domainCapabilities>"""


@pytest.mark.parametrize(
    ("xml", "ready", "missing"),
    [
        (
            _capabilities("<value>efi</value>", "<value>yes</value><value>no</value>", "<value>emulator</value>"),
            True,
            [],
        ),
        (
            _capabilities("", "<value>no</value>", "<value>emulator</value>"),
            False,
            ["UEFI firmware with Secure Boot (install ovmf)"],
        ),
        (
            _capabilities("<value>efi</value>", "<value>yes</value>", "<value>passthrough</value>"),
            False,
            ["a TPM 2.0 emulator (install swtpm)"],
        ),
    ],
)
def test_it_reads_what_windows_11_needs_from_the_hosts_capabilities(xml, ready, missing):
    support = parse_platform_support(xml)
    assert support.windows_ready is ready and support.missing() == missing
