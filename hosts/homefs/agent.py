"""Files in a home disk that a running guest has mounted, through qemu-guest-agent (guest-file-*, guest-exec).

Bytes move in chunks of at most 48 KiB: bigger ones desynchronise the agent's channel (FINDINGS), after which
one `guest-sync` brings it back. Folder operations run small POSIX shell scripts with the paths as arguments
(never spliced into the script), each of which first checks that the home is mounted and that the resolved
path stays inside it, so a symlink in the home cannot lead out of it.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from hosts.homefs import PARTIAL_PREFIX, Entry, FileBusy, FileMissing, HomeFsError, Usage
from hosts.homefs.paths import HomePath
from hosts.hypervisor import AgentUnavailable, HypervisorError

MOUNT = "/data"
CHUNK = 48 * 1024

# Shared prelude: $1 is the home's serial, then paths below the mount; exit 4 = the home is not what is mounted
# there, 5 = escapes the home, 2 = missing. The home is mounted over the desktop's own disk on the same
# directory, so "something is mounted" is not enough: the newest mount there must be the disk with this serial
# (or a file would land on the desktop's disk and go with it). Only busybox applets: Debian's static busybox
# has no `mountpoint`.
_PRELUDE = f"""
M={MOUNT}
S=$1; shift
d=$(awk -v m="$M" '$2 == m {{ d = $1 }} END {{ print d }}' /proc/mounts)
[ -n "$d" ] && [ "$(cat "/sys/block/${{d#/dev/}}/serial" 2>/dev/null)" = "$S" ] || exit 4
inside() {{ r=$(readlink -f -- "$1") || return 1; case "$r" in "$M"|"$M"/*) return 0;; esac; return 1; }}
"""
_SCRIPTS = {
    "list": """
inside "$1" || exit 5
[ -d "$1" ] || exit 2
cd -- "$1" || exit 2
for f in * .[!.]* ..?*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  if [ -L "$f" ]; then t=link; elif [ -d "$f" ]; then t=dir; elif [ -f "$f" ]; then t=file; else t=other; fi
  printf '%s\\t%s\\t%s\\0' "$t" "$(stat -c '%s %Y' -- "$f")" "$f"
done
""",
    "stat": """
[ -e "$1" ] || [ -L "$1" ] || exit 2
if [ -L "$1" ]; then t=link; elif [ -d "$1" ]; then t=dir; elif [ -f "$1" ]; then t=file; else t=other; fi
printf '%s\\t%s' "$t" "$(stat -c '%s %Y' -- "$1")"
""",
    "mkdir": """
inside "$(dirname -- "$1")" || exit 5
[ -e "$1" ] && exit 17
mkdir -- "$1" || exit 1
""",
    "move": """
inside "$(dirname -- "$1")" || exit 5
inside "$(dirname -- "$2")" || exit 5
[ -e "$1" ] || [ -L "$1" ] || exit 2
[ -e "$2" ] && exit 17
[ -d "$(dirname -- "$2")" ] || exit 20
mv -- "$1" "$2" && sync
""",
    "delete": """
inside "$(dirname -- "$1")" || exit 5
[ -e "$1" ] || [ -L "$1" ] || exit 2
rm -rf -- "$1" && sync
""",
    "commit": """
inside "$(dirname -- "$2")" || exit 5
[ -d "$2" ] && exit 21
mv -f -- "$1" "$2" && sync
""",
    "prepare": """
inside "$(dirname -- "$1")" || exit 5
[ -d "$(dirname -- "$1")" ] || exit 20
[ -d "$2" ] && exit 21
exit 0
""",
    "discard": 'rm -f -- "$1"',
    "usage": 'df -Pk "$M" | tail -n 1',
}
_EXIT = {
    2: (FileMissing, "No such file or folder.", "file_not_found"),
    4: (FileBusy, "Your desktop has not mounted your home yet; try again in a moment.", "home_not_mounted"),
    5: (HomeFsError, "That path leads outside your home.", "path_escapes_home"),
    17: (HomeFsError, "That name already exists.", "exists"),
    20: (HomeFsError, "The target folder does not exist.", "not_a_folder"),
    21: (HomeFsError, "A folder of that name is in the way.", "exists"),
}

Agent = Callable[[dict, int], object]


class AgentFiles:
    """The HomeFiles of a home disk mounted in a running guest; `agent(command, timeout_s)` sends one command.

    `serial` is the home disk's (HomeDisk.serial): the guest is trusted with a path only where that disk is mounted.
    """

    def __init__(self, agent: Agent, *, serial: str) -> None:
        self._agent = agent
        self._serial = serial

    # --- plumbing

    def _call(self, command: dict, timeout_s: int = 10) -> object:
        try:
            return self._agent(command, timeout_s)
        except AgentUnavailable:
            # A desynchronised channel answers garbage until a guest-sync; resync once and retry.
            self._sync()
            try:
                return self._agent(command, timeout_s)
            except HypervisorError as exc:
                raise FileBusy(f"The desktop's guest agent does not answer: {exc}") from exc
        except HypervisorError as exc:
            raise FileBusy(f"The desktop's guest agent does not answer: {exc}") from exc

    def _sync(self) -> None:
        with contextlib.suppress(HypervisorError):
            self._agent({"execute": "guest-sync", "arguments": {"id": secrets.randbelow(2**31)}}, 5)

    def _script(self, name: str, *args: str, timeout_s: float = 60) -> bytes:
        body = _PRELUDE + _SCRIPTS[name]
        started = self._call(
            {
                "execute": "guest-exec",
                "arguments": {
                    "path": "/bin/sh",
                    "arg": ["-c", body, "sh", self._serial, *args],
                    "capture-output": True,
                },
            }
        )
        pid = started["pid"] if isinstance(started, dict) else None
        if not isinstance(pid, int):
            raise FileBusy("The desktop's guest agent cannot run commands.")
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            status = self._call({"execute": "guest-exec-status", "arguments": {"pid": pid}})
            if isinstance(status, dict) and status.get("exited"):
                break
            if time.monotonic() > deadline:
                raise FileBusy("The desktop took too long to answer.")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        code = int(status.get("exitcode", 1))
        if code in _EXIT:
            cls, message, error_code = _EXIT[code]
            raise cls(message, code=error_code)
        if code != 0:
            err = base64.b64decode(status.get("err-data", "") or "").decode(errors="replace").strip()
            raise HomeFsError(f"The desktop refused: {err[:200] or f'exit {code}'}")
        return base64.b64decode(status.get("out-data", "") or "")

    def _abs(self, path: HomePath) -> str:
        return path.under(MOUNT)

    # --- reading

    def stat(self, path: HomePath) -> Entry:
        out = self._script("stat", self._abs(path)).decode(errors="surrogateescape")
        kind, _, rest = out.partition("\t")
        size, _, mtime = rest.partition(" ")
        return Entry(name=path.name, kind=kind, size=_int(size), mtime=_int(mtime))

    def list(self, path: HomePath) -> list[Entry]:
        out = self._script("list", self._abs(path))
        entries = []
        for record in out.split(b"\0"):
            fields = record.decode(errors="surrogateescape").split("\t", 2)
            if len(fields) != 3:
                continue
            kind, numbers, name = fields
            size, _, mtime = numbers.partition(" ")
            if name.startswith(PARTIAL_PREFIX) or (path.is_root and name == "lost+found"):
                continue
            entries.append(Entry(name=name, kind=kind, size=_int(size), mtime=_int(mtime)))
        return sorted(entries, key=lambda e: (e.kind != "dir", e.name.lower()))

    def read(self, path: HomePath) -> Iterator[bytes]:
        entry = self.stat(path)
        if entry.kind != "file":
            raise HomeFsError("Only files can be downloaded (folders as a zip).", code="not_a_file")
        handle = self._call({"execute": "guest-file-open", "arguments": {"path": self._abs(path), "mode": "r"}})
        return self._stream(handle)

    def _stream(self, handle: object) -> Iterator[bytes]:
        try:
            while True:
                got = self._call({"execute": "guest-file-read", "arguments": {"handle": handle, "count": CHUNK}})
                if not isinstance(got, dict):
                    raise FileBusy("The desktop's guest agent answered nonsense.")
                data = base64.b64decode(got.get("buf-b64", ""))
                if data:
                    yield data
                if got.get("eof") or not data:
                    return
        finally:
            self._close(handle)

    def _close(self, handle: object) -> None:
        with contextlib.suppress(HomeFsError):
            self._call({"execute": "guest-file-close", "arguments": {"handle": handle}})

    def usage(self) -> Usage:
        fields = self._script("usage").decode().split()
        # Filesystem 1024-blocks Used Available Capacity Mounted-on
        total, used = (_int(fields[1]), _int(fields[2])) if len(fields) >= 4 else (0, 0)
        return Usage(used_bytes=used * 1024, total_bytes=total * 1024)

    # --- writing

    def write(self, path: HomePath, source: BinaryIO) -> int:
        if path.is_root:
            raise HomeFsError("Give the file a name.", code="invalid_path")
        final = self._abs(path)
        partial = path.parent.under(MOUNT).rstrip("/") + "/" + PARTIAL_PREFIX + secrets.token_hex(6)
        self._script("prepare", final, final)
        handle = self._call({"execute": "guest-file-open", "arguments": {"path": partial, "mode": "w"}})
        written = 0
        try:
            while chunk := source.read(CHUNK):
                self._call(
                    {
                        "execute": "guest-file-write",
                        "arguments": {"handle": handle, "buf-b64": base64.b64encode(chunk).decode()},
                    },
                    timeout_s=30,
                )
                written += len(chunk)
            self._call({"execute": "guest-file-flush", "arguments": {"handle": handle}})
        except BaseException:
            self._close(handle)
            self._discard(partial)
            raise
        self._close(handle)
        try:
            self._script("commit", partial, final)
        except HomeFsError:
            self._discard(partial)
            raise
        return written

    def _discard(self, partial: str) -> None:
        with contextlib.suppress(HomeFsError):
            self._script("discard", partial)

    def mkdir(self, path: HomePath) -> None:
        if path.is_root:
            raise HomeFsError("That already exists.", code="exists", status=409)
        self._script("mkdir", self._abs(path))

    def move(self, source: HomePath, dest: HomePath) -> None:
        if source.is_root or dest.is_root:
            raise HomeFsError("The home folder itself cannot be moved.", code="invalid_path")
        if dest.parts[: len(source.parts)] == source.parts:
            raise HomeFsError("A folder cannot be moved into itself.", code="invalid_path")
        self._script("move", self._abs(source), self._abs(dest))

    def delete(self, path: HomePath) -> None:
        if path.is_root:
            raise HomeFsError("The home folder itself cannot be deleted.", code="invalid_path")
        self._script("delete", self._abs(path))


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0
