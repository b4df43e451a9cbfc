"""LUKS-encrypted qcow2 files made with qemu-img on the host itself (libvirt cannot set the iteration time).

The passphrase reaches qemu-img on its stdin, read as `--object secret,file=/dev/stdin`, so it is never
written to a file nor shown on a command line, here or on a remote host reached through its shell
(host_shell.py). Only hosts with a shell can do this; `LibvirtHypervisor.supports_disk_encryption` says which.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from hosts.hypervisor.errors import OperationFailed
from hosts.hypervisor.host_shell import LOCAL, HostShell

__all__ = ["CALIBRATION_FLAKE", "ITER_TIME_MS", "create_encrypted", "grow_encrypted", "virtual_size"]

# Keys are 32 random bytes, so key stretching adds nothing; 1 ms keeps each open (every boot) at
# a few milliseconds, where QEMU's default costs seconds per start (FINDINGS).
ITER_TIME_MS = 1
# QEMU's PBKDF calibration sometimes fails on coarse thread CPU accounting; a retry succeeds.
CALIBRATION_FLAKE = "Unable to get accurate CPU usage"
_ATTEMPTS = 6
_QEMU_IMG = "qemu-img"
_SECRET = "secret,id=s0,file=/dev/stdin"


def _run(args: Sequence[str], passphrase: bytes, *, shell: HostShell, timeout_s: float = 120.0) -> None:
    """Run qemu-img on the host with the passphrase on stdin as secret id `s0`."""
    result = shell.run([_QEMU_IMG, args[0], "--object", _SECRET, *args[1:]], stdin=passphrase, timeout_s=timeout_s)
    if result.returncode != 0:
        raise OperationFailed(f"qemu-img {args[0]} failed: {(result.stderr or result.stdout).strip()}")


def create_encrypted(
    path: str,
    passphrase: bytes,
    size_bytes: int,
    *,
    backing_path: str | None = None,
    backing_format: str = "qcow2",
    shell: HostShell = LOCAL,
) -> None:
    """A new empty LUKS-encrypted qcow2 at path, over backing_path if given; costs seconds of CPU.

    Each file gets its own LUKS master key: that is what makes deleting one desktop's key an erasure.
    """
    options = f"encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time={ITER_TIME_MS},compat=1.1"
    backing = ["-b", backing_path, "-F", backing_format] if backing_path else []
    for attempt in range(_ATTEMPTS):
        try:
            argv = ["create", "-q", "-f", "qcow2", "-o", options, *backing, path, str(size_bytes)]
            _run(argv, passphrase, shell=shell)
            break
        except OperationFailed as error:
            if CALIBRATION_FLAKE not in str(error) or attempt == _ATTEMPTS - 1:
                raise
            shell.remove(path)
            time.sleep(0.05)
    shell.chmod(path, 0o600)


def virtual_size(path: str, *, shell: HostShell = LOCAL) -> int:
    """The size the guest sees, from the qcow2 header (no key needed; -U: the domain may hold it open)."""
    result = shell.run([_QEMU_IMG, "info", "-U", "--output=json", path], timeout_s=60)
    if result.returncode != 0:
        raise OperationFailed(f"qemu-img info failed: {result.stderr.strip()}")
    return int(json.loads(result.stdout)["virtual-size"])


def grow_encrypted(path: str, passphrase: bytes, size_bytes: int, *, shell: HostShell = LOCAL) -> None:
    """Grow a stopped domain's encrypted overlay (the grown part reads as zeros, not as the base)."""
    if "," in path:
        raise ValueError("disk paths with commas cannot be given to qemu-img --image-opts")
    image = f"driver=qcow2,file.filename={path},encrypt.key-secret=s0"
    _run(["resize", "-q", "--image-opts", image, str(size_bytes)], passphrase, shell=shell)
