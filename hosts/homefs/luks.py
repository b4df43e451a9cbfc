"""Encrypted home disks (LUKS qcow2) seen from the host: a decrypted raw view for debugfs and mkfs, never a copy.

qemu-storage-daemon opens the qcow2 with the key (passed through a pipe, as hosts.hypervisor.qemu_img does) and
exports the guest's view of it as a FUSE file for as long as the `opened` block runs; debugfs and mkfs.ext4
work on that file as on a raw image. Plain bytes exist only in the daemon's memory and the kernel's page cache,
never on disk. QEMU's image lock stands between it and a guest: while a desktop has the home open, the daemon
cannot open it (FileBusy), and while the daemon has it, a hot-plug fails instead of sharing the disk.

Each image has its own run directory holding a lock file, the mount point and the daemon's pid: a worker that
died inside the block leaves a daemon and a mount behind, which the next `opened` finds (the lock is free, the
pid file is not) and takes down before it starts its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hosts.homefs import FileBusy, HomeFsError
from hosts.hypervisor import qemu_img

__all__ = ["create", "opened"]

_DAEMON = "qemu-storage-daemon"
_NODE = "home"
# Opening takes ~50 ms (the key costs ~1 ms: qemu_img.ITER_TIME_MS); a loaded host gets far more.
START_TIMEOUT_S = 30.0


def _run_dir(image_path: str, base: str | None) -> Path:
    """The image's own directory (0700): one per image, so two workers opening one home meet on its lock."""
    root = Path(base or tempfile.gettempdir()) / "quetzal-homes"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha256(os.path.abspath(image_path).encode()).hexdigest()[:20]
    path = root / digest
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def create(image_path: str, passphrase: bytes, size_bytes: int) -> None:
    """A new empty LUKS qcow2 (its own master key, no backing file) at image_path; mode 0600."""
    qemu_img.create_encrypted(image_path, passphrase, size_bytes)


@contextlib.contextmanager
def opened(image_path: str, passphrase: bytes, *, run_dir: str | None = None) -> Iterator[str]:
    """The decrypted contents of the LUKS qcow2 at image_path as a writable raw file, for the block's duration."""
    if not os.path.exists(image_path):
        raise HomeFsError("The home disk's image is missing on its host.", code="home_missing", status=404)
    where = _run_dir(image_path, run_dir)
    with (where / "lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileBusy("Your home folder is being worked on; try again in a moment.") from None
        _take_down(where)  # what a worker that died in here left running
        mount = where / "home.raw"
        mount.touch(mode=0o600)
        proc = _start(image_path, passphrase, where, mount)
        try:
            yield str(mount)
        finally:
            _stop(proc, where)


def _start(image_path: str, passphrase: bytes, where: Path, mount: Path) -> subprocess.Popen:
    """Run the daemon as this process's child (so it is reaped here) and return once its export is mounted."""
    blockdev = {
        "driver": "qcow2",
        "node-name": _NODE,
        "file": {"driver": "file", "filename": image_path},
        "encrypt": {"format": "luks", "key-secret": "s0"},
    }
    argv = [
        _DAEMON,
        "--blockdev", json.dumps(blockdev),
        "--export", f"type=fuse,id={_NODE},node-name={_NODE},mountpoint={mount},writable=on",
        "--chardev", f"socket,id=qmp,path={where / 'qmp.sock'},server=on,wait=off",
        "--monitor", "chardev=qmp",
        "--pidfile", str(where / "pid"),
    ]  # fmt: skip
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, passphrase)  # far below a pipe's buffer: never blocks
        os.close(write_fd)
        write_fd = -1
        secret = ["--object", f"secret,id=s0,file=/dev/fd/{read_fd}"]
        try:
            # Errors go to a file, not a pipe nobody reads while the daemon runs (a full pipe would stall it).
            with (where / "stderr").open("w") as errors:
                proc = subprocess.Popen(
                    [argv[0], *secret, *argv[1:]],
                    pass_fds=(read_fd,),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                )
        except FileNotFoundError as exc:
            raise HomeFsError(f"{_DAEMON} is not installed on this host (apt-get install qemu-system-x86).") from exc
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not os.path.ismount(mount):
        if proc.poll() is not None:
            raise _refusal((where / "stderr").read_text(errors="replace"))
        if time.monotonic() > deadline:
            _stop(proc, where)
            raise HomeFsError("The encrypted home disk took too long to open.", code="home_unopenable", status=409)
        time.sleep(0.005)
    return proc


def _refusal(error: str) -> HomeFsError:
    error = error.strip()
    if "password" in error.lower() or "keyslot" in error:
        return HomeFsError("The home disk's key does not open it.", code="home_key_mismatch", status=409)
    if re.search(r"Failed to get .*lock", error):
        return FileBusy("A desktop has this home disk open; use the file manager through it.")
    detail = f"The encrypted home disk could not be opened: {error[:300]}"
    return HomeFsError(detail, code="home_unopenable", status=409)


def _stop(proc: subprocess.Popen, where: Path) -> None:
    """Unmount (which flushes what was written) and end our own daemon."""
    # block-export-del unmounts cleanly; a SIGTERM alone leaves a dead FUSE mount behind.
    _qmp(where / "qmp.sock", [{"execute": "block-export-del", "arguments": {"id": _NODE}}, {"execute": "quit"}])
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _take_down(where)


def _take_down(where: Path) -> None:
    """Unmount and stop a daemon left in this run directory by a worker that died (not our child: no wait)."""
    pid_file, mount = where / "pid", where / "home.raw"
    pid = _read_pid(pid_file)
    if pid is not None and _is_daemon(pid):
        # block-export-del unmounts cleanly and flushes; a SIGTERM alone leaves a dead FUSE mount behind.
        _qmp(where / "qmp.sock", [{"execute": "block-export-del", "arguments": {"id": _NODE}}, {"execute": "quit"}])
        deadline = time.monotonic() + 10
        while _is_daemon(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _is_daemon(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if os.path.ismount(mount):
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)
    for leftover in (pid_file, where / "qmp.sock"):
        leftover.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_daemon(pid: int) -> bool:
    """The pid is a live qemu-storage-daemon (not a reused pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[:1]
    except OSError:
        return False
    return _DAEMON.encode() in cmdline.split(b"\0", 1)[0] and state != ["Z"]


def _qmp(path: Path, commands: list[dict]) -> None:
    """Send QMP commands in order, each after the previous one's answer; a daemon already gone is fine."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            stream = sock.makefile("rwb")
            stream.readline()  # greeting
            for command in [{"execute": "qmp_capabilities"}, *commands]:
                stream.write(json.dumps(command).encode() + b"\n")
                stream.flush()
                while True:  # events may come before the answer
                    line = stream.readline()
                    if not line or b'"return"' in line or b'"error"' in line:
                        break
    except OSError:
        pass
