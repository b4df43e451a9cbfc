"""Test doubles: disk image bytes and a hypervisor that records volume uploads."""

from __future__ import annotations

import struct
from pathlib import Path

from hosts.hypervisor import OperationFailed


def qcow2_bytes(virtual_size: int, *, backing: bool = False, padding: int = 4096) -> bytes:
    """A qcow2 v3 header (what import reads) followed by zeros."""
    header = b"QFI\xfb" + struct.pack(">I", 3)
    header += struct.pack(">QI", 512 if backing else 0, 9 if backing else 0)
    header += struct.pack(">IQ", 16, virtual_size)
    return header + b"\0" * (padding - len(header))


class RecordingHypervisor:
    """Stands in for a remote host: uploads are kept in memory, as bytes that crossed the wire."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.volumes: dict[str, bytes] = {}
        self.fail_on = fail_on

    def volume_delete(self, pool: str, name: str) -> None:
        self.volumes.pop(name, None)

    def volume_upload(self, pool: str, name: str, src_path: str, fmt: str = "qcow2") -> str:
        if self.fail_on and name.endswith(self.fail_on):
            raise OperationFailed("pool is full")
        self.volumes[name] = Path(src_path).read_bytes()
        return f"/pool/{name}"
