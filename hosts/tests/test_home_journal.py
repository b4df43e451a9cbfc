"""A home a guest was switched off with: the host side replays its ext4 journal first, so the guest's next mount
cannot undo what the host wrote meanwhile. Real mkfs, debugfs and e2fsck on a real image; no guest needed.
"""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest

from hosts.homefs import clean_path
from hosts.homefs.image import ImageFiles, format_image, needs_recovery
from tests.services import require_tool


@pytest.fixture
def switched_off_home(tmp_path) -> str:
    """An ext4 home whose last guest wrote fromguest.txt and was destroyed before the journal was checkpointed.

    debugfs's journal commands leave what a killed guest leaves: a committed transaction (here, the root
    directory's block as the guest wrote it) and the superblock's needs_recovery flag.
    """
    require_tool("debugfs", "e2fsprogs")
    path = tmp_path / "home.img"
    with path.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    format_image(str(path))
    note = tmp_path / "note.txt"
    note.write_text("written in the guest\n")
    _debugfs(path, f"write {note} fromguest.txt")
    block_size = int(re.search(r"Block size:\s+(\d+)", _debugfs(path, "stats", write=False)).group(1))
    root_block = int(re.search(r"\(0\):(\d+)", _debugfs(path, "stat /", write=False)).group(1))
    with path.open("rb") as handle:
        handle.seek(root_block * block_size)
        (tmp_path / "root.blk").write_bytes(handle.read(block_size))
    _debugfs(path, "jo", f"jw -b {root_block} {tmp_path / 'root.blk'}", "jc")
    assert needs_recovery(str(path))
    return str(path)


def _debugfs(path: Path, *commands: str, write: bool = True) -> str:
    argv = ["debugfs", *(["-w"] if write else []), "-f", "-", str(path)]
    return subprocess.run(argv, input="\n".join(commands), capture_output=True, text=True, check=True).stdout


def _next_mount(path: str) -> None:
    """What the guest's next mount does first: replay the journal (e2fsck replays it as the kernel does)."""
    subprocess.run(["e2fsck", "-fy", path], capture_output=True, check=False)


def test_it_keeps_what_the_host_wrote_after_a_guest_was_switched_off(switched_off_home):
    # Given a home its last guest was switched off with
    files = ImageFiles(switched_off_home)
    # When the host side puts a file into it, and a guest mounts it afterwards
    files.write(clean_path("offline.txt"), io.BytesIO(b"put while no desktop ran\n"))
    _next_mount(switched_off_home)
    # Then the guest's file and the host's are both there, and the filesystem is clean
    names = [entry.name for entry in ImageFiles(switched_off_home).list(clean_path(""))]
    assert names == ["fromguest.txt", "offline.txt"]
    assert b"".join(ImageFiles(switched_off_home).read(clean_path("offline.txt"))) == b"put while no desktop ran\n"
    assert subprocess.run(["e2fsck", "-fn", switched_off_home], capture_output=True).returncode == 0


def test_it_replays_the_journal_before_a_listing_too(switched_off_home):
    # When the host side only looks (a stale view otherwise)
    names = [entry.name for entry in ImageFiles(switched_off_home).list(clean_path(""))]
    # Then it saw the guest's file, and nothing is left to replay
    assert names == ["fromguest.txt"]
    assert not needs_recovery(switched_off_home)
