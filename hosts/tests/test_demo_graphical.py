"""The graphical demo image: its recipe, its cache per version, its initramfs (its boot: test_e2e_graphical.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from hosts import demo_graphical as dg
from hosts import demo_image as di
from tests.services import missing


@pytest.fixture
def kernel_and_busybox(tmp_path: Path) -> tuple[Path, Path]:
    """The host's Debian kernel and busybox (what every recipe is made of), or skip without them."""
    try:
        kernel, _ = di.find_kernel()
        return kernel, di.find_busybox()
    except di.DemoImageError as exc:
        missing(f"what the graphical demo is built from ({exc})")


def test_it_changes_the_recipe_hash_with_packages_and_guest_files(monkeypatch, kernel_and_busybox) -> None:
    kernel, busybox = kernel_and_busybox
    base = dg.recipe_hash(dg.current_recipe(kernel, busybox))
    # the same inputs give the same hash
    assert dg.recipe_hash(dg.current_recipe(kernel, busybox)) == base
    # one more package is a new recipe
    monkeypatch.setattr(dg, "PACKAGES", (*dg.PACKAGES, "htop"))
    with_htop = dg.recipe_hash(dg.current_recipe(kernel, busybox))
    assert with_htop != base
    # and so is a changed guest file
    files = dg.guest_files()
    files["etc/hostname"] = ("elsewhere\n", 0o644)
    monkeypatch.setattr(dg, "guest_files", lambda: files)
    assert dg.recipe_hash(dg.current_recipe(kernel, busybox)) not in (base, with_htop)


def fake_mmdebstrap(calls: list[str]):
    """Stands in for mmdebstrap (minutes and the Debian mirror): writes a small raw disk where the hook would."""

    def run(*, overlay: Path, raw: Path, **kwargs) -> None:
        calls.append(str(raw))
        # The overlay is what the real hook copies in: our session files and the host's modules.
        assert (overlay / "etc/quetzal/session").exists()
        assert list((overlay / "usr/lib/modules").glob("*/kernel/drivers/gpu/drm/tiny/bochs.ko*"))
        with raw.open("wb") as fh:
            fh.truncate(4 * 1024 * 1024)

    return run


def test_it_builds_once_and_reuses_the_image_while_the_recipe_holds(monkeypatch, tmp_path, kernel_and_busybox) -> None:
    kernel, busybox = kernel_and_busybox
    calls: list[str] = []
    monkeypatch.setattr(dg, "_mmdebstrap", fake_mmdebstrap(calls))
    # when built twice with the same recipe
    first = dg.build_graphical_image(tmp_path, kernel=kernel, busybox=busybox)
    second = dg.build_graphical_image(tmp_path, kernel=kernel, busybox=busybox)
    # then the packages were installed once and the same image came back
    assert len(calls) == 1 and first == second
    manifest = json.loads((tmp_path / dg.MANIFEST_NAME).read_text())
    assert manifest["recipe_sha256"] == dg.recipe_hash(dg.current_recipe(kernel, busybox))
    assert first.disk.read_bytes()[:4] == b"QFI\xfb"  # qcow2
    assert first.cmdline == dg.CMDLINE and "root=/dev/vda" in first.cmdline
    # and a changed recipe builds again
    monkeypatch.setattr(dg, "GRAPHICAL_VERSION", dg.GRAPHICAL_VERSION + 1)
    dg.build_graphical_image(tmp_path, kernel=kernel, busybox=busybox)
    assert len(calls) == 2
    # as does a damaged disk
    first.disk.write_bytes(b"damaged")
    dg.build_graphical_image(tmp_path, kernel=kernel, busybox=busybox)
    assert len(calls) == 3


def test_it_makes_an_initramfs_that_switches_root_to_the_disk(kernel_and_busybox) -> None:
    kernel, busybox = kernel_and_busybox
    version = kernel.name.removeprefix("vmlinuz-")
    entries = di.read_cpio_names(gzip.decompress(dg.build_initramfs(busybox, Path("/lib/modules") / version)))
    assert "init" in entries and "bin/busybox" in entries and "sbin/switch_root" in entries
    assert any(name.endswith(("/ext4.ko", "/ext4.ko.xz")) for name in entries)
    assert any(name.endswith(("/virtio_blk.ko", "/virtio_blk.ko.xz")) for name in entries)
    assert "switch_root /newroot /sbin/init" in dg._INITRD_INIT


def test_it_makes_the_filesystem_without_loop_mounts() -> None:
    script = dg._customize_script(raw=Path("/w/root.raw"), view=Path("/w/view"), version="6.1.0-1-amd64")
    assert "mkfs.ext4" in script and "-d /w/view" in script
    assert "loop" not in script
    # the session unit is enabled and nobody logs in on the serial port, which carries the readiness line
    assert "systemctl enable quetzal-desktop.service" in script and "serial-getty@ttyS0" in script
    # and the root filesystem grows to the desktop's disk at boot
    assert "quetzal-grow-root.service" in script
    assert "resize2fs /dev/vda" in dg.guest_files()["usr/local/sbin/quetzal-grow-root"][0]


def test_it_reads_the_readiness_line_from_a_serial_log() -> None:
    log = "Booting\r\nQUETZAL-READY-ish no\nQUETZAL-ROOT-KIB 2031616\r\nQUETZAL-READY 17.25\nQUETZAL-SAY hello\n"
    assert dg.ready_seconds(log) == 17.25
    assert dg.root_kib(log) == 2031616 and dg.root_kib("QUETZAL-ROOT-KIB big\n") is None
    assert dg.ready_seconds("QUETZAL-READYX 3\n") is None
    assert dg.ready_seconds("") is None


def test_it_caches_under_its_own_directory_per_version(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("QUETZAL_DEMO_GRAPHICAL_DIR", str(tmp_path / "g"))
    assert dg.default_graphical_dir() == tmp_path / "g"
    monkeypatch.delenv("QUETZAL_DEMO_GRAPHICAL_DIR")
    monkeypatch.setenv("QUETZAL_DEMO_IMAGE_DIR", str(tmp_path / "text"))
    assert dg.default_graphical_dir() == tmp_path / f"text-graphical-v{dg.GRAPHICAL_VERSION}"
    # By default: beside the text demo's version directories, named by the graphical demo's own version
    monkeypatch.delenv("QUETZAL_DEMO_IMAGE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = di.default_image_dir()
    graphical = dg.default_graphical_dir()
    assert graphical.parent == text.parent and graphical.name == f"graphical-v{dg.GRAPHICAL_VERSION}"
    # so a new text demo version leaves the graphical cache where it is, and a new graphical version moves it
    monkeypatch.setattr(di, "IMAGE_VERSION", di.IMAGE_VERSION + 1)
    assert dg.default_graphical_dir() == graphical
    monkeypatch.setattr(dg, "GRAPHICAL_VERSION", dg.GRAPHICAL_VERSION + 1)
    assert dg.default_graphical_dir() != graphical
