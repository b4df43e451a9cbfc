"""A person's home disk as files: safe paths, and two ways in (guest agent while attached, debugfs while not).

Nothing here knows about desktops or people: callers (desktops.services.files) decide which way applies —
the home disk is either attached to a running guest or not, never both — and hand over a `HomeFiles`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from hosts.homefs.paths import HomePath, InvalidPath, clean_name, clean_path

__all__ = [
    "Entry",
    "FileBusy",
    "FileMissing",
    "HomeFiles",
    "HomeFsError",
    "HomePath",
    "InvalidPath",
    "Usage",
    "clean_name",
    "clean_path",
]

# A temporary name a transfer writes under; it replaces the final name only when complete.
PARTIAL_PREFIX = ".qz-partial-"


class HomeFsError(Exception):
    """A file operation failed; `code` is stable, the message is for people."""

    code = "files_failed"
    status = 400

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class FileMissing(HomeFsError):
    code = "file_not_found"
    status = 404


class FileBusy(HomeFsError):
    """The disk is in use elsewhere (QEMU's image lock) or the guest cannot be reached."""

    code = "home_busy"
    status = 409


@dataclass(frozen=True)
class Entry:
    """One directory entry."""

    name: str
    kind: str  # "file" | "dir" | "link" | "other"
    size: int = 0
    mtime: int = 0


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    total_bytes: int


class HomeFiles(Protocol):
    """What the file manager may do in a home; every path is a validated HomePath."""

    def list(self, path: HomePath) -> list[Entry]: ...

    def stat(self, path: HomePath) -> Entry: ...

    def read(self, path: HomePath) -> Iterator[bytes]: ...

    def write(self, path: HomePath, source: BinaryIO) -> int: ...

    def mkdir(self, path: HomePath) -> None: ...

    def move(self, source: HomePath, dest: HomePath) -> None: ...

    def delete(self, path: HomePath) -> None: ...

    def usage(self) -> Usage: ...
