"""Where host-side tools run: qemu-img and file moves on a hypervisor host's own filesystem.

libvirt cannot set a LUKS overlay's iteration time, so encrypted disks are made with qemu-img on
the host itself (FINDINGS). For a local qemu:/// URI that is this machine. A remote host needs a
command that runs a shell command line there, named per URI by the operator (QUETZAL_HOST_SHELLS):
`ssh -o BatchMode=yes root@host1`, or `nsenter -t PID -m -- sh -c` for hosts in namespaces on this
machine. A host with neither keeps plain disks. Secrets travel on stdin, never on a command line.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from hosts.hypervisor.errors import OperationFailed

__all__ = ["LOCAL", "HostShell", "set_prefixes", "shell_for"]

_MISSING = 3  # exit status of the rename script when neither file exists


@dataclass(frozen=True)
class HostShell:
    """Runs commands on one host: directly here (no prefix), or as one quoted command line after a prefix."""

    prefix: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return not self.prefix

    def run(self, argv: Sequence[str], *, stdin: bytes = b"", timeout_s: float = 120.0) -> subprocess.CompletedProcess:
        """Run argv on the host, stdin fed from `stdin`; output decoded, never raises on a failed command."""
        command = list(argv) if self.is_local else [*self.prefix, shlex.join(argv)]
        result = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout_s)
        out, err = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
        return subprocess.CompletedProcess(result.args, result.returncode, out, err)

    def rename(self, src: str, dst: str) -> bool:
        """Move src to dst (one directory: atomic); True if done now or before (dst there), False if neither exists."""
        if self.is_local:
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                return os.path.exists(dst)
            return True
        script = f'if [ -e "$1" ]; then mv -f -- "$1" "$2"; elif [ -e "$2" ]; then :; else exit {_MISSING}; fi'
        result = self.run(["sh", "-c", script, "sh", src, dst], timeout_s=60)
        if result.returncode == _MISSING:
            return False
        self._check(result, "mv")
        return True

    def remove(self, path: str) -> None:
        """Delete a file; a missing one is success."""
        if self.is_local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        self._check(self.run(["rm", "-f", "--", path], timeout_s=60), "rm")

    def chmod(self, path: str, mode: int) -> None:
        if self.is_local:
            os.chmod(path, mode)
            return
        self._check(self.run(["chmod", f"{mode:o}", "--", path], timeout_s=60), "chmod")

    @staticmethod
    def _check(result: subprocess.CompletedProcess, what: str) -> None:
        if result.returncode != 0:
            raise OperationFailed(f"{what} on the host failed: {(result.stderr or result.stdout).strip()}")


LOCAL = HostShell()

# Set once by the hosts app (from settings); the hypervisor layer itself never reads Django settings.
_prefixes: Callable[[], Mapping[str, Sequence[str]]] = dict


def set_prefixes(provider: Callable[[], Mapping[str, Sequence[str]]]) -> None:
    """Where shell_for() reads the operator's command prefixes per host URI (read on every call)."""
    global _prefixes
    _prefixes = provider


def shell_for(uri: str) -> HostShell | None:
    """How to run tools on the host of a QEMU URI: here for a local one, the configured prefix for a remote one."""
    parts = urlsplit(uri)
    if parts.scheme.split("+")[0] != "qemu":
        return None  # libvirt's test driver has no host files
    if parts.scheme == "qemu" and not parts.hostname:
        return LOCAL
    prefix = _prefixes().get(uri)
    return HostShell(tuple(prefix)) if prefix else None
