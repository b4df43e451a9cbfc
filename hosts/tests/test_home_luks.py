"""Encrypted home images seen from the host: real qemu-img LUKS files, a real qemu-storage-daemon FUSE view, debugfs.

No guest and no libvirt: these run wherever QEMU's tools and /dev/fuse are (a host that keeps encrypted homes).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hosts.homefs import FileBusy, HomeFsError, clean_path, luks
from hosts.homefs.image import ImageFiles, format_image

MARKER = b"qz-home-cleartext-" + os.urandom(6).hex().encode()
KEY = os.urandom(32).hex().encode()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    """One 32 MiB LUKS qcow2 with an empty ext4 inside (making a LUKS header costs seconds: made once)."""
    path = str(tmp_path_factory.mktemp("luks") / "home.qcow2")
    luks.create(path, KEY, 32 * 1024 * 1024)
    with luks.opened(path, KEY) as view:
        format_image(view)
    return path


def _mounts() -> str:
    return Path("/proc/self/mounts").read_text()


def test_it_keeps_what_is_written_through_the_view_encrypted_on_disk(image):
    # Given an encrypted home image
    # When a file is written through its decrypted view, and the view is closed
    with luks.opened(image, KEY) as view:
        ImageFiles(view, check_lock=False).write(clean_path("notes.txt"), io.BytesIO(MARKER * 50))
        assert subprocess.run(["e2fsck", "-fn", view], capture_output=True).returncode == 0
    # Then the bytes are nowhere in the file at rest, and no view is left mounted
    assert MARKER not in Path(image).read_bytes()
    assert "quetzal-homes" not in _mounts()
    # And opening it again reads them back
    with luks.opened(image, KEY) as view:
        assert b"".join(ImageFiles(view).read(clean_path("notes.txt"))) == MARKER * 50


def test_it_refuses_a_wrong_key_and_a_second_opener(image, tmp_path):
    # When the image is opened with another key, it is refused with a stable code
    with pytest.raises(HomeFsError) as refused, luks.opened(image, os.urandom(32).hex().encode()):
        pass
    assert refused.value.code == "home_key_mismatch"
    # When a second opener comes while the first has it (its own run directory: QEMU's image lock decides)
    with luks.opened(image, KEY), pytest.raises(FileBusy), luks.opened(image, KEY, run_dir=str(tmp_path)):
        pass
    # And one in the same run directory is told at once, before QEMU is asked
    with luks.opened(image, KEY), pytest.raises(FileBusy) as busy, luks.opened(image, KEY):
        pass
    assert "being worked on" in busy.value.detail


def test_it_takes_down_what_a_worker_that_died_inside_left_running(image):
    # Given a worker process that died with the view open (its daemon keeps the image locked, its mount stays)
    script = f"""
        import os, sys
        from hosts.homefs import luks
        with luks.opened({image!r}, {KEY!r}):
            os._exit(3)
    """
    died = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=Path(__file__).resolve().parents[2])
    assert died.returncode == 3
    assert "quetzal-homes" in _mounts()
    # When the next worker opens the image, it works (the leftover daemon was stopped, its mount removed)
    with luks.opened(image, KEY) as view:
        assert ImageFiles(view).usage().total_bytes > 0
    # Then nothing is left behind
    assert "quetzal-homes" not in _mounts()
    leftover = subprocess.run(["pgrep", "-f", f"qemu-storage-daemon.*{image}"], capture_output=True)
    assert leftover.returncode == 1


def test_it_says_the_image_is_missing(tmp_path):
    with pytest.raises(HomeFsError) as missing, luks.opened(str(tmp_path / "nope.qcow2"), KEY):
        pass
    assert missing.value.code == "home_missing"
