"""Files in a home disk image that no guest has open, through debugfs (e2fsprogs) on the host that holds it.

debugfs works on the raw ext4 image directly: no mount, no root, no loop device. It exits 0 even when a
command fails, so every call reads stderr for the error lines. A write goes to a partial name in the target
folder and is renamed over the final name in the same debugfs run, so a failed upload leaves no half file
under the final name. QEMU holds a lock on an image it has open; `_ensure_unlocked` refuses to write then.

A guest that was switched off with the home mounted (a recycled pooled desktop is destroyed, a crash) leaves
committed changes in ext4's journal. debugfs neither replays nor honours it, and the guest's next mount would
replay it over whatever the host wrote meanwhile, so the journal is replayed (e2fsck, journal only) before the
host side first touches such a filesystem.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from hosts.homefs import PARTIAL_PREFIX, Entry, FileBusy, FileMissing, HomeFsError, Usage
from hosts.homefs.paths import HomePath

LABEL = "quetzal-home"
_READ_CHUNK = 1024 * 1024
_BANNER = re.compile(r"^debugfs [0-9.]+ \(.*\)$")
_TYPES = {0o040000: "dir", 0o100000: "file", 0o120000: "link"}
# ext4's superblock (at byte 1024): its magic, and the incompatible-features word whose RECOVER bit says that the
# journal holds changes not yet written to their places.
_SUPERBLOCK = 1024
_MAGIC_AT, _MAGIC = 0x38, 0xEF53
_INCOMPAT_AT, _INCOMPAT_RECOVER = 0x60, 0x0004


def _q(path: str) -> str:
    """A debugfs argument: double-quoted, quotes doubled (its parser's escape); a newline would end the command."""
    if "\n" in path or "\r" in path or "\x00" in path:
        raise HomeFsError("That name cannot be handled from the host side.", code="invalid_path")
    return '"' + path.replace('"', '""') + '"'


def format_image(path: str) -> None:
    """Make an empty ext4 filesystem (label quetzal-home) in an existing sparse file; the guest mounts it as is."""
    # -m 0: a home needs no blocks reserved for root; lazy init keeps a 10 GiB format under a second.
    _tool(["mkfs.ext4", "-q", "-F", "-L", LABEL, "-m", "0",
           "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", path])  # fmt: skip


def needs_recovery(path: str) -> bool:
    """Whether the ext4 in the image has a journal to replay (it was not unmounted cleanly)."""
    with open(path, "rb") as handle:
        handle.seek(_SUPERBLOCK)
        superblock = handle.read(_INCOMPAT_AT + 4)
    if len(superblock) < _INCOMPAT_AT + 4:
        return False
    magic = int.from_bytes(superblock[_MAGIC_AT : _MAGIC_AT + 2], "little")
    incompat = int.from_bytes(superblock[_INCOMPAT_AT : _INCOMPAT_AT + 4], "little")
    return magic == _MAGIC and bool(incompat & _INCOMPAT_RECOVER)


def replay_journal(path: str) -> None:
    """Write the journal's committed changes to their places, as a mount would; nothing else is checked."""
    try:
        proc = subprocess.run(["e2fsck", "-p", "-E", "journal_only", path], capture_output=True, timeout=600)
    except FileNotFoundError as exc:
        raise HomeFsError("e2fsck is not installed on this host (apt-get install e2fsprogs).") from exc
    # 0: nothing to do, 1: the journal was replayed.
    if proc.returncode not in (0, 1):
        error = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        raise HomeFsError(f"The home disk's journal could not be replayed: {error[:300]}", code="home_unopenable")


def _tool(cmd: list[str], *, stdin: bytes | None = None) -> str:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=600)
    except FileNotFoundError as exc:
        raise HomeFsError(f"{cmd[0]} is not installed on this host (apt-get install e2fsprogs).") from exc
    if proc.returncode != 0:
        raise HomeFsError(f"{cmd[0]} failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout.decode(errors="surrogateescape")


class ImageFiles:
    """The HomeFiles of one raw ext4 image on this machine (or the decrypted view of an encrypted one)."""

    def __init__(self, image_path: str, *, check_lock: bool = True) -> None:
        self.image = image_path
        # A decrypted view (hosts.homefs.luks) is itself the lock holder: no guest can have the disk meanwhile.
        self.check_lock = check_lock
        self._journal_checked = False

    # --- plumbing

    def _debugfs(self, commands: list[str], *, write: bool = False) -> str:
        """Run commands in one debugfs process; raise on the first error line it prints."""
        if not os.path.exists(self.image):
            raise FileMissing("The home disk's image is missing on its host.", code="home_missing")
        if not self._journal_checked:
            self._replay_if_needed()
        if write and self.check_lock:
            self._ensure_unlocked()
        cmd = ["debugfs", *(["-w"] if write else []), "-f", "-", self.image]
        try:
            proc = subprocess.run(cmd, input="\n".join(commands).encode(), capture_output=True, timeout=600)
        except FileNotFoundError as exc:
            raise HomeFsError("debugfs is not installed on this host (apt-get install e2fsprogs).") from exc
        errors = [
            line for line in proc.stderr.decode(errors="replace").splitlines() if line and not _BANNER.match(line)
        ]
        if errors:
            if any("not found" in line for line in errors):
                raise FileMissing("No such file or folder.")
            raise HomeFsError(f"The home disk refused: {errors[0][:200]}")
        return proc.stdout.decode(errors="surrogateescape")

    def _replay_if_needed(self) -> None:
        """Replay a journal a switched-off guest left, before reading (a stale view) or writing (undone later)."""
        if needs_recovery(self.image):
            if self.check_lock:
                self._ensure_unlocked()  # a guest still has it: its journal is its own business
            replay_journal(self.image)
        self._journal_checked = True

    def _ensure_unlocked(self) -> None:
        """QEMU's image lock: a running guest has the disk, so the host must not write to it."""
        proc = subprocess.run(["qemu-img", "info", "-f", "raw", self.image], capture_output=True, timeout=30)
        if proc.returncode != 0 and b"lock" in proc.stderr:
            raise FileBusy("A desktop has this home disk open; use the file manager through it.")

    def _abs(self, path: HomePath) -> str:
        return path.under("/")

    # --- reading

    def stat(self, path: HomePath) -> Entry:
        out = self._debugfs([f"stat {_q(self._abs(path))}"])
        kind = re.search(r"Type: (\w+)", out)
        size = re.search(r"\bSize: (\d+)", out)
        mtime = re.search(r"mtime: 0x([0-9a-f]+)", out)
        kinds = {"regular": "file", "directory": "dir", "symlink": "link"}
        return Entry(
            name=path.name,
            kind=kinds.get(kind.group(1), "other") if kind else "other",
            size=int(size.group(1)) if size else 0,
            mtime=int(mtime.group(1), 16) if mtime else 0,
        )

    def list(self, path: HomePath) -> list[Entry]:
        if self.stat(path).kind != "dir":
            raise HomeFsError("Not a folder.", code="not_a_folder")
        out = self._debugfs([f"ls -p {_q(self._abs(path))}"])
        entries = []
        for line in out.splitlines():
            # /inode/mode/uid/gid/name/size/ — a name with "/" cannot exist; one with a newline is skipped.
            fields = line.split("/")
            if len(fields) < 8 or fields[0] != "":
                continue
            name = "/".join(fields[5:-2])
            if name in (".", "..") or name.startswith(PARTIAL_PREFIX) or (path.is_root and name == "lost+found"):
                continue
            try:
                mode, size = int(fields[2], 8), int(fields[-2] or 0)
            except ValueError:
                continue
            entries.append(Entry(name=name, kind=_TYPES.get(mode & 0o170000, "other"), size=size))
        return sorted(entries, key=lambda e: (e.kind != "dir", e.name.lower()))

    def read(self, path: HomePath) -> Iterator[bytes]:
        """The file's bytes in chunks; the checks run now, the copy as the caller iterates."""
        if self.stat(path).kind != "file":
            raise HomeFsError("Only files can be downloaded (folders as a zip).", code="not_a_file")
        return self._stream(path)

    def _stream(self, path: HomePath) -> Iterator[bytes]:
        proc = subprocess.Popen(
            ["debugfs", "-R", f"cat {_q(self._abs(path))}", self.image],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read(_READ_CHUNK):
                yield chunk
        finally:
            proc.stdout.close()
            proc.kill()
            proc.wait()

    def usage(self) -> Usage:
        out = self._debugfs(["stats"])
        numbers = {
            key: int(match.group(1))
            for key in ("Block count", "Free blocks", "Block size")
            if (match := re.search(rf"^{key}:\s+(\d+)", out, re.MULTILINE))
        }
        size = numbers.get("Block size", 4096)
        total = numbers.get("Block count", 0) * size
        return Usage(used_bytes=total - numbers.get("Free blocks", 0) * size, total_bytes=total)

    # --- writing

    def write(self, path: HomePath, source: BinaryIO) -> int:
        if path.is_root:
            raise HomeFsError("Give the file a name.", code="invalid_path")
        if self.stat(path.parent).kind != "dir":
            raise HomeFsError("The target folder does not exist.", code="not_a_folder")
        existing = self._maybe_stat(path)
        if existing is not None and existing.kind != "file":
            raise HomeFsError(f"{path.name} exists and is not a file.", code="exists")
        with _local_file(source) as local:
            size = os.path.getsize(local)
            usage = self.usage()
            if size > usage.total_bytes - usage.used_bytes + (existing.size if existing else 0):
                raise HomeFsError("Not enough space left in your home.", code="quota_home_full", status=409)
            partial = path.parent.under("/").rstrip("/") + "/" + PARTIAL_PREFIX + secrets.token_hex(6)
            final = self._abs(path)
            commands = [f"write {_q(local)} {_q(partial)}", f"sif {_q(partial)} mode 0100644"]
            if existing is not None:
                commands.append(f"rm {_q(final)}")
            commands += [f"ln {_q(partial)} {_q(final)}", f"unlink {_q(partial)}"]
            try:
                self._debugfs(commands, write=True)
            except HomeFsError:
                self._cleanup(partial)
                raise
        return size

    def _cleanup(self, partial: str) -> None:
        with contextlib.suppress(HomeFsError):
            self._debugfs([f"rm {_q(partial)}"], write=True)

    def _maybe_stat(self, path: HomePath) -> Entry | None:
        try:
            return self.stat(path)
        except FileMissing:
            return None

    def mkdir(self, path: HomePath) -> None:
        if path.is_root or self._maybe_stat(path) is not None:
            raise HomeFsError(f"{path.name or 'That'} already exists.", code="exists", status=409)
        self._debugfs([f"mkdir {_q(self._abs(path))}"], write=True)

    def move(self, source: HomePath, dest: HomePath) -> None:
        if source.is_root or dest.is_root:
            raise HomeFsError("The home folder itself cannot be moved.", code="invalid_path")
        if dest.parts[: len(source.parts)] == source.parts:
            raise HomeFsError("A folder cannot be moved into itself.", code="invalid_path")
        entry = self.stat(source)
        if self._maybe_stat(dest) is not None:
            raise HomeFsError(f"{dest.name} already exists.", code="exists", status=409)
        if self.stat(dest.parent).kind != "dir":
            raise HomeFsError("The target folder does not exist.", code="not_a_folder")
        commands = [f"ln {_q(self._abs(source))} {_q(self._abs(dest))}", f"unlink {_q(self._abs(source))}"]
        if entry.kind == "dir" and source.parent != dest.parent:
            # debugfs moves the entry only: point the folder's ".." at its new parent and fix both parents'
            # link counts (each subfolder's ".." counts as a link), as rename(2) would; e2fsck stays clean.
            old_links, new_links = self._links(source.parent), self._links(dest.parent)
            commands += [
                f"cd {_q(self._abs(dest))}",
                "unlink ..",
                f"ln <{self._inode(dest.parent)}> ..",
                f"sif {_q(self._abs(source.parent))} links_count {old_links - 1}",
                f"sif {_q(self._abs(dest.parent))} links_count {new_links + 1}",
            ]
        self._debugfs(commands, write=True)

    def _links(self, path: HomePath) -> int:
        match = re.search(r"Links: (\d+)", self._debugfs([f"stat {_q(self._abs(path))}"]))
        return int(match.group(1)) if match else 2

    def _inode(self, path: HomePath) -> int:
        match = re.search(r"Inode: (\d+)", self._debugfs([f"stat {_q(self._abs(path))}"]))
        if not match:
            raise FileMissing("No such folder.")
        return int(match.group(1))

    def delete(self, path: HomePath) -> None:
        if path.is_root:
            raise HomeFsError("The home folder itself cannot be deleted.", code="invalid_path")
        commands: list[str] = []
        self._delete_commands(path, self.stat(path), commands)
        self._debugfs(commands, write=True)

    def _delete_commands(self, path: HomePath, entry: Entry, commands: list[str]) -> None:
        if entry.kind == "dir":
            for child in self._raw_children(path):
                self._delete_commands(HomePath((*path.parts, child.name)), child, commands)
            commands.append(f"rmdir {_q(self._abs(path))}")
        else:
            commands.append(f"rm {_q(self._abs(path))}")

    def _raw_children(self, path: HomePath) -> list[Entry]:
        out = self._debugfs([f"ls -p {_q(self._abs(path))}"])
        children = []
        for line in out.splitlines():
            fields = line.split("/")
            if len(fields) < 8 or fields[0] != "":
                continue
            name = "/".join(fields[5:-2])
            if name not in (".", ".."):
                children.append(Entry(name=name, kind=_TYPES.get(int(fields[2], 8) & 0o170000, "other")))
        return children


class _local_file:
    """A path debugfs can read: the source's own file when it has one, else a temporary copy."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.temp: str | None = None

    def __enter__(self) -> str:
        name = getattr(self.source, "name", None)
        if isinstance(name, str) and os.path.isfile(name):
            self.source.flush()
            return name
        fd, self.temp = tempfile.mkstemp(prefix="qz-home-")
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(self.source, out, 1024 * 1024)
        return self.temp

    def __exit__(self, *exc: object) -> None:
        if self.temp:
            os.unlink(self.temp)
