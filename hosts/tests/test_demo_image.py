"""The demo desktop image: what the build puts in the kernel, initramfs and disk."""

from __future__ import annotations

import gzip
import json
import stat
import subprocess
from pathlib import Path

import pytest

from hosts import demo_image as di
from hosts.checksums import sha256_file
from hosts.demo_image import DemoImage
from hosts.tests.qemu_fixtures import demo_image_isolated  # noqa: F401 (fixture)
from tests.services import require, require_tool


@pytest.fixture(scope="module")
def cpio_entries(demo_image_isolated: DemoImage) -> dict[str, int]:  # noqa: F811
    """Names and modes in the built initramfs."""
    return di.read_cpio_names(gzip.decompress(demo_image_isolated.initrd.read_bytes()))


def test_it_builds_kernel_initrd_and_disk(demo_image_isolated: DemoImage) -> None:  # noqa: F811
    """The image holds the installed Debian kernel, an initramfs and a qcow2 disk."""
    image = demo_image_isolated
    source, version = di.find_kernel()
    assert image.kernel_version == version
    assert image.kernel.read_bytes() == source.read_bytes()
    assert image.initrd.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    assert image.cmdline == di.DEMO_CMDLINE
    assert "console=tty1" in image.cmdline and "console=ttyS0" in image.cmdline
    # Nothing but the image itself (no temporary files) is left in the directory.
    assert sorted(p.name for p in image.disk.parent.iterdir()) == sorted(
        [di.KERNEL_NAME, di.INITRD_NAME, di.DISK_NAME, di.MANIFEST_NAME]
    )
    # World-readable: libvirtd's QEMU runs as an unprivileged user.
    for path in (image.kernel, image.initrd, image.disk):
        assert path.stat().st_mode & 0o004


def test_it_reports_the_disk_checksum_and_format(demo_image_isolated: DemoImage) -> None:  # noqa: F811
    """disk_sha256 matches the file and qemu-img sees a 64 MiB qcow2."""
    image = demo_image_isolated
    assert image.disk_sha256 == sha256_file(image.disk)
    qemu_img = require_tool("qemu-img", "qemu-utils")
    info = json.loads(
        subprocess.run(
            [qemu_img, "info", "--output=json", str(image.disk)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert info["format"] == "qcow2" == image.disk_format
    assert info["virtual-size"] == di.DISK_SIZE_BYTES == image.disk_size_bytes
    # A base disk must not itself depend on another file.
    assert "backing-filename" not in info


def test_it_packs_init_and_busybox(cpio_entries: dict[str, int]) -> None:
    """/init is an executable file and busybox provides init, sh and the tools /init uses."""
    assert stat.S_ISREG(cpio_entries["init"]) and cpio_entries["init"] & 0o111
    assert stat.S_ISREG(cpio_entries["bin/busybox"]) and cpio_entries["bin/busybox"] & 0o111
    for applet in ("bin/sh", "sbin/init", "bin/mount", "sbin/acpid", "sbin/poweroff", "usr/bin/fold"):
        assert stat.S_ISLNK(cpio_entries[applet]), applet
    for path in ("etc/inittab", "etc/init.d/rcS", "etc/acpi/PWRF/00000080", "etc/profile"):
        assert stat.S_ISREG(cpio_entries[path]), path
    # The kernel needs /dev/console before /init mounts devtmpfs.
    assert stat.S_ISCHR(cpio_entries["dev/console"])


def test_it_packs_the_modules_the_guest_loads(
    demo_image_isolated: DemoImage,  # noqa: F811
    cpio_entries: dict[str, int],
) -> None:
    """Every module in /etc/modules is in the archive, dependencies before dependants."""
    raw = gzip.decompress(demo_image_isolated.initrd.read_bytes())
    listed = _cpio_file(raw, "etc/modules").decode().split()
    names = [Path(p).name for p in listed]
    for path in listed:
        assert path.lstrip("/") in cpio_entries
    for needed in ("virtio_blk.ko", "ext4.ko", "button.ko", "evdev.ko"):
        assert needed in names
    assert names.index("virtio.ko") < names.index("virtio_blk.ko")
    assert names.index("jbd2.ko") < names.index("ext4.ko")


def test_it_packs_the_guest_agent_the_file_manager_needs(
    demo_image_isolated: DemoImage,  # noqa: F811
    cpio_entries: dict[str, int],
) -> None:
    """qemu-ga, its libraries and the dynamic loader are in the guest, and rcS starts it on the agent's port."""
    qemu_ga = di.find_qemu_ga()
    require(qemu_ga is not None, "qemu-guest-agent (scripts/system-packages installs it)")
    assert demo_image_isolated.guest_agent
    name = di.QEMU_GA_GUEST_PATH.lstrip("/")
    assert stat.S_ISREG(cpio_entries[name]) and cpio_entries[name] & 0o111
    for library in di._shared_libraries(qemu_ga):
        assert str(library).lstrip("/") in cpio_entries, library
    rcs = _cpio_file(gzip.decompress(demo_image_isolated.initrd.read_bytes()), "etc/init.d/rcS").decode()
    assert f"/{name} -m virtio-serial" in rcs and di.AGENT_PORT_NAME in rcs


def test_it_writes_an_archive_gnu_cpio_can_read(demo_image_isolated: DemoImage) -> None:  # noqa: F811
    """Our newc writer agrees with GNU cpio (the format the kernel unpacks)."""
    cpio = require_tool("cpio", "cpio")
    listing = subprocess.run(
        [cpio, "-it", "--quiet"],
        input=gzip.decompress(demo_image_isolated.initrd.read_bytes()),
        check=True,
        capture_output=True,
    ).stdout.decode()
    names = set(listing.split())
    assert {"init", "bin/busybox", "etc/inittab", "dev/console"} <= names


def test_it_reuses_a_valid_image(demo_image_isolated: DemoImage) -> None:  # noqa: F811
    """A second build in the same directory rewrites nothing and returns the same image."""
    image = demo_image_isolated
    before = {p: p.stat().st_mtime_ns for p in (image.kernel, image.initrd, image.disk)}
    again = di.build_demo_image(image.disk.parent)
    assert again == image
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_it_rebuilds_a_damaged_image(tmp_path: Path, demo_image_isolated: DemoImage) -> None:  # noqa: F811
    """A truncated file fails the manifest check and is rebuilt with the same checksum."""
    image = di.build_demo_image(tmp_path)
    image.disk.write_bytes(b"not a disk")
    rebuilt = di.build_demo_image(tmp_path)
    assert rebuilt.disk_sha256 == sha256_file(rebuilt.disk) == image.disk_sha256


def test_it_is_reproducible(tmp_path: Path, demo_image_isolated: DemoImage) -> None:  # noqa: F811
    """Two builds from the same packages give byte-identical initramfs and disk."""
    other = di.build_demo_image(tmp_path)
    assert other.disk_sha256 == demo_image_isolated.disk_sha256
    assert sha256_file(other.initrd) == sha256_file(demo_image_isolated.initrd)


def test_it_parses_screens_from_a_serial_log() -> None:
    """Complete snapshots are found among kernel noise; a torn last one is ignored."""
    log = (
        "[    0.5] noise\r\n"
        f"{di.READY_BANNER} 2.31\r\n"
        f"{di.SCREEN_BEGIN} rows=25 cols=80 x=3 y=1\r\n"
        "first   \r\n"
        f"{di.PROMPT}~#\r\n"
        "\r\n"
        f"{di.SCREEN_END}\r\n"
        f"{di.SCREEN_BEGIN} rows=25 cols=80 x=0 y=0\r\n"
        "torn"
    )
    screens = di.parse_screens(log)
    assert len(screens) == 1
    screen = di.last_screen(log)
    assert screen is not None
    assert (screen.rows, screen.cols, screen.cursor_x, screen.cursor_y) == (25, 80, 3, 1)
    assert screen.lines[0] == "first"
    assert screen.text == f"first\n{di.PROMPT}~#"
    assert di.boot_seconds(log) == pytest.approx(2.31)
    assert di.last_screen("no markers") is None
    assert di.boot_seconds("nothing") is None


def test_it_says_no_kvm_without_dev_kvm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an accessible /dev/kvm the probe answers no at once."""
    monkeypatch.setattr(di.os, "access", lambda *_args, **_kw: False)
    assert di.kvm_probe() == (False, "/dev/kvm missing or not accessible")
    assert di.kvm_works() is False


def _cpio_file(raw: bytes, wanted: str) -> bytes:
    """The content of one file of an uncompressed newc archive."""
    pos = 0
    while pos + 110 <= len(raw):
        fields = [int(raw[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        name = raw[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        if name == wanted:
            return raw[pos : pos + size]
        pos += size + (-size % 4)
    raise KeyError(wanted)
