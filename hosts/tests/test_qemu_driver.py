"""The libvirt driver against a real libvirtd + QEMU: a demo desktop's whole life, no leftovers."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hosts import demo_image as di
from hosts.demo_image import DemoImage
from hosts.hypervisor.base import DomainState, Hypervisor
from hosts.hypervisor.domain import DiskSpec, DomainSpec, GraphicsSpec, InterfaceSpec
from hosts.tests.qemu_fixtures import (  # noqa: F401 (fixtures)
    VncKeyboard,
    demo_image_for_qemu,
    qemu_hypervisor,
    qemu_uri,
    qtest_prefix,
    read_text,
)
from tests.services import optional
from tests.waiting import wait_until

pytestmark = pytest.mark.qemu

POOL = "default"
BOOT_TIMEOUT_S = 60.0
SCREEN_TIMEOUT_S = 20.0
_MARKS = itertools.count(100)


@dataclass(frozen=True)
class DemoDesktop:
    """One demo desktop made by a test: its names, paths and serial log."""

    hypervisor: Hypervisor
    name: str
    base_volume: str
    disk_volume: str
    serial_log: Path
    prefix: str

    def log(self) -> str:
        """The serial log so far."""
        return read_text(self.serial_log)

    def wait_ready(self, since: int = 0) -> float:
        """Wait for the READY banner after offset since; return the seconds it took."""
        started = time.monotonic()
        wait_until(
            lambda: di.READY_BANNER in self.log()[since:],
            BOOT_TIMEOUT_S,
            explain=lambda: f"no {di.READY_BANNER}:\n{self.log()[-3000:]}",
        )
        return time.monotonic() - started

    def wait_screen(self, needle: str, *, since: int = 0) -> di.Screen:
        """Wait until the newest mirrored screen after offset since shows needle."""

        def check() -> di.Screen | None:
            screen = di.last_screen(self.log()[since:])
            return screen if screen is not None and needle in screen.text else None

        def last_seen() -> str:
            last = di.last_screen(self.log()[since:])
            return f"screen never showed {needle!r}:\n{last.text if last else self.log()}"

        return wait_until(check, SCREEN_TIMEOUT_S, explain=last_seen)

    def run(self, command: str) -> str:
        """Run a shell command typed on the VNC console; return its output as the screen shows it."""
        n = next(_MARKS)
        marker = f"=={n + 1}=="
        offset = len(self.log())
        # The leading clear wipes older output, and the marker appears only once the command has
        # run (the typed line shows $((n+1)), not its value), so no stale screen can match.
        self.type(f"clear; {command}; echo ==$(({n}+1))==\n")
        screen = self.wait_screen(marker, since=offset)
        lines = list(screen.lines)
        return "\n".join(lines[: lines.index(marker)]) if marker in lines else screen.text

    def type(self, text: str) -> None:
        """Type on the guest's VNC console."""
        address = self.hypervisor.console_address(self.name)
        keyboard = VncKeyboard(address.host, address.port)
        try:
            keyboard.type_text(text)
        finally:
            keyboard.close()


@pytest.fixture
def demo_desktop(
    qemu_hypervisor: Hypervisor,  # noqa: F811
    demo_image_for_qemu: DemoImage,  # noqa: F811
    qtest_prefix: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[DemoDesktop]:
    """Volumes and names for one demo desktop, removed afterwards even when the test fails."""
    hv = qemu_hypervisor
    desktop = DemoDesktop(
        hypervisor=hv,
        name=f"{qtest_prefix}vm",
        base_volume=f"{qtest_prefix}base.qcow2",
        disk_volume=f"{qtest_prefix}disk.qcow2",
        serial_log=tmp_path / "serial.log",
        prefix=qtest_prefix,
    )
    try:
        yield desktop
    finally:
        # Best effort: the test itself asserts the clean-up; this only guards other tests.
        with contextlib.suppress(Exception):
            hv.undefine(desktop.name)
        for volume in (desktop.disk_volume, desktop.base_volume):
            with contextlib.suppress(Exception):
                hv.volume_delete(POOL, volume)


def _spec(
    desktop: DemoDesktop,
    image: DemoImage,
    disk_path: str,
    desktop_id: int,
    interfaces: tuple[InterfaceSpec, ...] = (),
) -> DomainSpec:
    """The domain of a demo desktop: TCG, direct kernel boot, serial log, VNC on loopback."""
    return DomainSpec(
        name=desktop.name,
        uuid=str(uuid.uuid4()),
        desktop_id=desktop_id,
        tenant_slug="qtest",
        vcpus=1,
        memory_mib=256,
        # TCG: /dev/kvm may exist where nested virtualisation crawls (see demo_image.kvm_probe).
        virt_type="qemu",
        disks=(DiskSpec(path=disk_path, target_dev="vda", bus="virtio", driver_type="qcow2"),),
        interfaces=interfaces,
        graphics=GraphicsSpec(listen_address="127.0.0.1"),
        serial_log_path=str(desktop.serial_log),
        kernel=str(image.kernel),
        initrd=str(image.initrd),
        cmdline=image.cmdline,
        title="Quetzal real-QEMU test desktop",
    )


def test_it_runs_a_demo_desktop_through_its_whole_life(
    qemu_hypervisor: Hypervisor,  # noqa: F811
    demo_image_for_qemu: DemoImage,  # noqa: F811
    demo_desktop: DemoDesktop,
) -> None:
    """Upload, clone, define, boot, read the screen, snapshot/revert, shut down, remove."""
    hv, image, desktop = qemu_hypervisor, demo_image_for_qemu, demo_desktop
    desktop_id = int(time.time() * 1000) % 10**9

    # given the base disk uploaded into the pool and a linked clone on it
    base_path = hv.volume_upload(POOL, desktop.base_volume, str(image.disk), "qcow2")
    disk_path = hv.volume_create_linked_clone(POOL, desktop.disk_volume, base_path, "qcow2", image.disk_size_bytes)
    assert hv.volume_exists(POOL, desktop.disk_volume)
    assert os.path.dirname(disk_path) == hv.pool_path(POOL)

    # when the desktop is defined and started
    info = hv.define(_spec(desktop, image, disk_path, desktop_id))
    assert (info.name, info.desktop_id, info.state) == (desktop.name, desktop_id, DomainState.SHUTOFF)
    assert desktop.name in {d.name for d in hv.list_domains()}
    hv.start(desktop.name)
    hv.start(desktop.name)  # already running is success

    # then it boots to a shell on its VNC console within the budget, under TCG
    boot_wall_s = desktop.wait_ready()
    uptime_s = di.boot_seconds(desktop.log())
    print(f"demo desktop under libvirt/TCG: READY after {boot_wall_s:.1f}s wall, guest uptime {uptime_s}s")
    assert hv.state(desktop.name) is DomainState.RUNNING
    desktop.wait_screen(di.PROMPT)
    address = hv.console_address(desktop.name)
    assert address.host == "127.0.0.1" and address.port >= 5900
    stats = {s.name: s for s in hv.all_domain_stats()}
    assert stats[desktop.name].cpu_time_ns > 0 and stats[desktop.name].desktop_id == desktop_id

    # and typed keys reach the shell, whose /data is the cloned base disk
    assert di.DATA_README in desktop.run("ls /data")

    # when a snapshot of the running desktop is taken, a file made, and the snapshot reverted
    hv.snapshot_create(desktop.name, "clean", description="before the marker file")
    assert [s.name for s in hv.snapshot_list(desktop.name)] == ["clean"]
    assert "snapmark" in desktop.run("touch /data/snapmark; ls /data")
    hv.snapshot_revert(desktop.name, "clean")
    assert hv.state(desktop.name) is DomainState.RUNNING

    # then the file is gone again (disk and memory went back together)
    listing = desktop.run("ls /data")
    assert di.DATA_README in listing and "snapmark" not in listing
    hv.snapshot_delete(desktop.name, "clean")
    hv.snapshot_delete(desktop.name, "clean")  # missing is success
    assert hv.snapshot_list(desktop.name) == []

    # when a file is saved and the desktop shut down gracefully and started again
    assert "keepme" in desktop.run("touch /data/keepme; sync; ls /data")
    assert hv.shutdown(desktop.name, timeout_s=30) is True, desktop.log()[-2000:]
    assert hv.state(desktop.name) is DomainState.SHUTOFF
    assert di.POWEROFF_BANNER in desktop.log()
    # libvirt truncates a file-backed serial log at each start; drop ours so no old READY lingers.
    desktop.serial_log.unlink()
    hv.start(desktop.name)
    desktop.wait_ready()
    desktop.wait_screen(di.PROMPT)

    # then the file survived in the linked clone
    assert "keepme" in desktop.run("ls /data")

    # when it is forced off, undefined and its volumes deleted
    hv.destroy(desktop.name)
    hv.destroy(desktop.name)  # already off is success
    assert hv.state(desktop.name) is DomainState.SHUTOFF
    hv.undefine(desktop.name)
    hv.volume_delete(POOL, desktop.disk_volume)
    hv.volume_delete(POOL, desktop.base_volume)

    # then nothing with our prefix is left on the host
    assert [d.name for d in hv.list_domains() if d.name.startswith(desktop.prefix)] == []
    assert not hv.volume_exists(POOL, desktop.disk_volume)
    assert not hv.volume_exists(POOL, desktop.base_volume)
    assert [f for f in os.listdir(hv.pool_path(POOL)) if f.startswith(desktop.prefix)] == []


def test_it_forces_off_a_guest_that_ignores_the_power_button(
    qemu_hypervisor: Hypervisor,  # noqa: F811
    demo_image_for_qemu: DemoImage,  # noqa: F811
    demo_desktop: DemoDesktop,
) -> None:
    """shutdown() destroys after its timeout and says the guest did not stop by itself."""
    hv, image, desktop = qemu_hypervisor, demo_image_for_qemu, demo_desktop
    base_path = hv.volume_upload(POOL, desktop.base_volume, str(image.disk), "qcow2")
    disk_path = hv.volume_create_linked_clone(POOL, desktop.disk_volume, base_path, "qcow2")
    hv.define(_spec(desktop, image, disk_path, desktop_id=424242))
    hv.start(desktop.name)
    desktop.wait_ready()
    desktop.wait_screen(di.PROMPT)

    # given a guest whose ACPI daemon is gone
    desktop.run("killall acpid")

    # when it is asked to shut down with a short timeout
    stopped_by_itself = hv.shutdown(desktop.name, timeout_s=3)

    # then it was forced off
    assert stopped_by_itself is False
    assert hv.state(desktop.name) is DomainState.SHUTOFF
    assert di.POWEROFF_BANNER not in desktop.log()
    hv.undefine(desktop.name)
    hv.volume_delete(POOL, desktop.disk_volume)
    hv.volume_delete(POOL, desktop.base_volume)
    assert [d.name for d in hv.list_domains() if d.name.startswith(desktop.prefix)] == []
    assert [f for f in os.listdir(hv.pool_path(POOL)) if f.startswith(desktop.prefix)] == []


def test_it_gives_a_networked_demo_desktop_a_dhcp_lease(
    qemu_hypervisor: Hypervisor,  # noqa: F811
    demo_image_for_qemu: DemoImage,  # noqa: F811
    demo_desktop: DemoDesktop,
) -> None:
    """On libvirt's NAT network 'default' the guest gets an address (optional on a host)."""
    hv, image, desktop = qemu_hypervisor, demo_image_for_qemu, demo_desktop
    # Networking is optional for Quetzal's demo desktops, so even under CI this only skips.
    optional(_network_active("default"), "libvirt's NAT network 'default'")
    base_path = hv.volume_upload(POOL, desktop.base_volume, str(image.disk), "qcow2")
    disk_path = hv.volume_create_linked_clone(POOL, desktop.disk_volume, base_path, "qcow2")
    hv.define(_spec(desktop, image, disk_path, 434343, (InterfaceSpec(network="default"),)))

    hv.start(desktop.name)

    lease = wait_until(
        lambda: re.search(di.NET_BANNER + r" eth0 (\d+\.\d+\.\d+\.\d+)", desktop.log()),
        45,
        explain=lambda: desktop.log()[-2000:],
    )
    assert lease.group(1).startswith("192.168.122.")
    hv.undefine(desktop.name)
    hv.volume_delete(POOL, desktop.disk_volume)
    hv.volume_delete(POOL, desktop.base_volume)
    assert [f for f in os.listdir(hv.pool_path(POOL)) if f.startswith(desktop.prefix)] == []


def _network_active(name: str) -> bool:
    """Whether libvirt's network name is active (asked through virsh: tests import no libvirt)."""
    try:
        out = subprocess.run(
            ["virsh", "-c", qemu_uri(), "net-info", name], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(r"^Active:\s+yes", out, re.MULTILINE) is not None
