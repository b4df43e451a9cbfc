"""LUKS-encrypted qcow2 files made with qemu-img on the host itself (libvirt cannot set the iteration time).

The passphrase reaches qemu-img through a pipe named as /dev/fd/N in a `--object secret`, so it is
never written to a file nor shown on a command line. Only hosts whose storage this process sees
(local qemu:/// URIs) can do this; `LibvirtHypervisor.supports_disk_encryption` says which.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence

from hosts.hypervisor.errors import OperationFailed

__all__ = ["CALIBRATION_FLAKE", "ITER_TIME_MS", "create_encrypted", "grow_encrypted", "virtual_size"]

# Keys are 32 random bytes, so key stretching adds nothing; 1 ms keeps each open (every boot) at
# a few milliseconds, where QEMU's default costs seconds per start (FINDINGS).
ITER_TIME_MS = 1
# QEMU's PBKDF calibration sometimes fails on coarse thread CPU accounting; a retry succeeds.
CALIBRATION_FLAKE = "Unable to get accurate CPU usage"
_ATTEMPTS = 6
_QEMU_IMG = "qemu-img"


def _run(args: Sequence[str], passphrase: bytes, *, timeout_s: float = 120.0) -> None:
    """Run qemu-img with the passphrase readable on /dev/fd/<n> as secret id `s0`."""
    read_fd, write_fd = os.pipe()
    try:
        # A pipe buffer holds far more than 64 bytes of hex, so this write never blocks.
        os.write(write_fd, passphrase)
        os.close(write_fd)
        write_fd = -1
        secret = f"secret,id=s0,file=/dev/fd/{read_fd}"
        argv = [_QEMU_IMG, args[0], "--object", secret, *args[1:]]
        result = subprocess.run(argv, pass_fds=(read_fd,), capture_output=True, text=True, timeout=timeout_s)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    if result.returncode != 0:
        raise OperationFailed(f"qemu-img {args[0]} failed: {(result.stderr or result.stdout).strip()}")


def create_encrypted(
    path: str, passphrase: bytes, size_bytes: int, *, backing_path: str | None = None, backing_format: str = "qcow2"
) -> None:
    """A new empty LUKS-encrypted qcow2 at path, over backing_path if given; costs seconds of CPU.

    Each file gets its own LUKS master key: that is what makes deleting one desktop's key an erasure.
    """
    options = f"encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time={ITER_TIME_MS},compat=1.1"
    backing = ["-b", backing_path, "-F", backing_format] if backing_path else []
    for attempt in range(_ATTEMPTS):
        try:
            _run(["create", "-q", "-f", "qcow2", "-o", options, *backing, path, str(size_bytes)], passphrase)
            break
        except OperationFailed as error:
            if CALIBRATION_FLAKE not in str(error) or attempt == _ATTEMPTS - 1:
                raise
            if os.path.exists(path):
                os.unlink(path)
            time.sleep(0.05)
    os.chmod(path, 0o600)


def virtual_size(path: str) -> int:
    """The size the guest sees, from the qcow2 header (no key needed; -U: the domain may hold it open)."""
    result = subprocess.run(
        [_QEMU_IMG, "info", "-U", "--output=json", path], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise OperationFailed(f"qemu-img info failed: {result.stderr.strip()}")
    return int(json.loads(result.stdout)["virtual-size"])


def grow_encrypted(path: str, passphrase: bytes, size_bytes: int) -> None:
    """Grow a stopped domain's encrypted overlay (the grown part reads as zeros, not as the base)."""
    if "," in path:
        raise ValueError("disk paths with commas cannot be given to qemu-img --image-opts")
    image = f"driver=qcow2,file.filename={path},encrypt.key-secret=s0"
    _run(["resize", "-q", "--image-opts", image, str(size_bytes)], passphrase)
