"""The demo image boots under plain QEMU (TCG, no libvirtd): shell, screen mirror, /data, ACPI."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hosts import demo_image as di
from hosts.demo_image import DemoImage
from hosts.tests.qemu_fixtures import (  # noqa: F401 (fixtures)
    demo_image_for_qemu,
    qemu_binary,
    read_text,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.qemu

BOOT_TIMEOUT_S = 60.0


class Qmp:
    """A minimal QMP client over a unix socket."""

    def __init__(self, path: Path) -> None:
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.settimeout(10)
        self._sock.connect(str(path))
        self._buf = b""
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, object]:
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, **arguments: object) -> object:
        """Run a command and return its result (asynchronous events are skipped)."""
        msg: dict[str, object] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self._sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error']}")

    def type_text(self, text: str) -> None:
        """Type unshifted text on the guest keyboard."""
        names = {" ": "spc", "/": "slash", ".": "dot", "-": "minus", "\n": "ret", "_": "minus"}
        for ch in text:
            key = names.get(ch, ch)
            self.execute("send-key", keys=[{"type": "qcode", "data": key}])
            time.sleep(0.02)

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


@pytest.fixture
def booted_guest(
    tmp_path: Path,
    qemu_binary: str,  # noqa: F811
    demo_image_for_qemu: DemoImage,  # noqa: F811
) -> Iterator[tuple[subprocess.Popen[bytes], Qmp, Path]]:
    """A demo guest on a throw-away overlay of the base disk, under TCG."""
    image = demo_image_for_qemu
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image.disk), str(overlay)],
        check=True,
    )
    serial = tmp_path / "serial.log"
    qmp_path = tmp_path / "qmp.sock"
    options = {
        "-accel": "tcg",
        "-m": "256",
        "-display": "none",
        "-vga": "std",
        "-serial": f"file:{serial}",
        "-qmp": f"unix:{qmp_path},server=on,wait=off",
        "-kernel": str(image.kernel),
        "-initrd": str(image.initrd),
        "-append": image.cmdline,
        "-drive": f"file={overlay},if=virtio,format=qcow2",
    }
    proc = subprocess.Popen(
        [qemu_binary, "-nodefaults", *(part for pair in options.items() for part in pair)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    qmp = None
    try:
        wait_until(qmp_path.exists, 10, explain="QEMU did not open its QMP socket")
        qmp = Qmp(qmp_path)
        yield proc, qmp, serial
    finally:
        if qmp is not None:
            qmp.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_it_boots_to_a_shell_and_mirrors_the_screen(booted_guest: tuple[subprocess.Popen[bytes], Qmp, Path]) -> None:
    """The READY banner arrives within the budget and the mirrored screen shows the prompt."""
    _proc, _qmp, serial = booted_guest
    started = time.monotonic()
    wait_until(lambda: di.READY_BANNER in read_text(serial), BOOT_TIMEOUT_S, explain=lambda: read_text(serial)[-2000:])
    wall = time.monotonic() - started
    wait_until(lambda: _screen_with(serial, di.PROMPT), 10, explain=lambda: read_text(serial)[-2000:])
    uptime = di.boot_seconds(read_text(serial))
    assert uptime is not None and uptime < BOOT_TIMEOUT_S
    print(f"demo boot under TCG: guest uptime {uptime:.2f}s, wall {wall:.2f}s")


def test_it_reads_keys_and_mounts_the_data_disk(booted_guest: tuple[subprocess.Popen[bytes], Qmp, Path]) -> None:
    """Keys typed on the console reach the shell, and /data holds the base disk's README."""
    _proc, qmp, serial = booted_guest
    wait_until(lambda: _screen_with(serial, di.PROMPT), BOOT_TIMEOUT_S, explain=lambda: read_text(serial)[-2000:])
    qmp.type_text("ls /data\n")
    wait_until(lambda: _screen_with(serial, di.DATA_README), 20, explain=lambda: read_text(serial)[-2000:])


def test_it_powers_off_on_the_acpi_button(booted_guest: tuple[subprocess.Popen[bytes], Qmp, Path]) -> None:
    """system_powerdown (what libvirt's graceful shutdown sends) stops the guest by itself."""
    proc, qmp, serial = booted_guest
    wait_until(lambda: di.READY_BANNER in read_text(serial), BOOT_TIMEOUT_S, explain=lambda: read_text(serial)[-2000:])
    qmp.execute("system_powerdown")
    wait_until(lambda: proc.poll() is not None, 30, explain="guest ignored the ACPI power button")
    assert di.POWEROFF_BANNER in read_text(serial)


def _screen_with(serial: Path, needle: str) -> di.Screen | None:
    """The newest mirrored screen if it contains needle."""
    screen = di.last_screen(read_text(serial))
    return screen if screen is not None and needle in screen.text else None
