"""Fixtures for tests that need the demo image, QEMU or a real libvirtd (import them by name)."""

from __future__ import annotations

import os
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hosts.demo_image import DemoImage, DemoImageError, build_demo_image, default_image_dir
from tests.services import missing, require_tool

if TYPE_CHECKING:
    from hosts.hypervisor.base import Hypervisor

QEMU_URI_ENV = "QUETZAL_TEST_QEMU_URI"
DEFAULT_QEMU_URI = "qemu:///system"
# Every object a real-QEMU test makes starts with this, so leftovers are easy to find.
TEST_PREFIX = "qtest-"


def qemu_uri() -> str:
    """The libvirt URI the real-QEMU tests use."""
    return os.environ.get(QEMU_URI_ENV, DEFAULT_QEMU_URI)


def _build(dest: Path) -> DemoImage:
    """Build the demo image or report the missing Debian package."""
    try:
        return build_demo_image(dest)
    except DemoImageError as exc:
        missing(f"what the demo image is built from ({exc})")


@pytest.fixture(scope="session")
def demo_image_isolated(tmp_path_factory: pytest.TempPathFactory) -> DemoImage:
    """A demo image built from scratch in a private directory (for tests of the build itself)."""
    return _build(tmp_path_factory.mktemp("demo-image"))


@pytest.fixture(scope="session")
def demo_image_for_qemu(tmp_path_factory: pytest.TempPathFactory) -> DemoImage:
    """The cached demo image in a directory the QEMU user of libvirtd can read."""
    dest = default_image_dir()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError:
        # Not root and no cache: QEMU started by us (not libvirtd) can still read a tmp dir.
        dest = tmp_path_factory.mktemp("demo-image")
    return _build(dest)


@pytest.fixture(scope="session")
def qemu_binary() -> str:
    """The path of qemu-system-x86_64, or skip (fail under CI)."""
    return require_tool("qemu-system-x86_64", "qemu-system-x86")


@pytest.fixture(scope="session")
def qemu_hypervisor() -> Iterator[Hypervisor]:
    """A driver connected to a libvirtd that answers, or skip (fail under CI)."""
    uri = qemu_uri()
    try:
        from hosts.hypervisor.errors import HypervisorError
        from hosts.hypervisor.libvirt_driver import LibvirtHypervisor
    except ImportError as exc:
        missing(f"the libvirt driver ({exc})")
    # A private instance, not the process-wide cache other tests may close or replace.
    hypervisor = LibvirtHypervisor(uri)
    try:
        hypervisor.host_info()
    except HypervisorError as exc:
        missing(f"libvirtd at {uri} ({exc}; run scripts/start-libvirtd)")
    yield hypervisor
    hypervisor.close()


@pytest.fixture
def qtest_prefix() -> str:
    """A unique name prefix for one test's domains and volumes."""
    return f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}-"


def read_text(path: Path) -> str:
    """A log file's text so far ('' while QEMU has not created it)."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# X11 keysyms of the keys tests type; printable ASCII keysyms equal their code points.
KEYSYM_RETURN = 0xFF0D
KEYSYM_SHIFT_L = 0xFFE1
_SHIFTED = set('~!@#$%^&*()_+{}|:"<>?') | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class VncKeyboard:
    """Types into a guest through its VNC server (RFB 3.8, no password), like a browser client."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        version = self._recv(12)
        if not version.startswith(b"RFB "):
            raise ConnectionError(f"not a VNC server: {version!r}")
        self._sock.sendall(b"RFB 003.008\n")
        (count,) = struct.unpack("B", self._recv(1))
        if count == 0:
            raise ConnectionError("VNC server refused the connection")
        if 1 not in self._recv(count):
            raise ConnectionError("VNC server requires authentication")
        self._sock.sendall(b"\x01")  # security type None
        if struct.unpack(">I", self._recv(4))[0] != 0:
            raise ConnectionError("VNC security handshake failed")
        self._sock.sendall(b"\x01")  # ClientInit: shared
        width, height = struct.unpack(">HH", self._recv(4))
        self._recv(16)  # pixel format
        (name_len,) = struct.unpack(">I", self._recv(4))
        self.name = self._recv(name_len).decode(errors="replace")
        self.size = (width, height)

    def _recv(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("VNC server closed the connection")
            data += chunk
        return data

    def key(self, keysym: int, down: bool) -> None:
        """Send one KeyEvent."""
        self._sock.sendall(struct.pack(">BBxxI", 4, int(down), keysym))

    def type_text(self, text: str, delay_s: float = 0.03) -> None:
        """Type text; shifted characters get an explicit Shift, newline is Return."""
        for ch in text:
            keysym = KEYSYM_RETURN if ch == "\n" else ord(ch)
            # QEMU maps a keysym to a key without adding Shift, so hold it as a user would.
            shifted = ch in _SHIFTED
            if shifted:
                self.key(KEYSYM_SHIFT_L, True)
            self.key(keysym, True)
            self.key(keysym, False)
            if shifted:
                self.key(KEYSYM_SHIFT_L, False)
            time.sleep(delay_s)

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()
