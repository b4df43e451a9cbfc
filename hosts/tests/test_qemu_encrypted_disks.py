"""LUKS overlays made by the driver with qemu-img on a real host: spare → desktop disk, no boot needed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from hosts.hypervisor import VolumeNotFound, qemu_img
from hosts.tests.qemu_fixtures import qemu_hypervisor, qtest_prefix  # noqa: F401 (fixtures)

MIB = 1024 * 1024
DEEP = 20 * MIB


def _decrypted(path: str, passphrase: bytes, dest: Path) -> bytes:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, passphrase)
    os.close(write_fd)
    try:
        subprocess.run(
            ["qemu-img", "convert", "--object", f"secret,id=s0,file=/dev/fd/{read_fd}",
             "--image-opts", f"driver=qcow2,file.filename={path},encrypt.key-secret=s0", "-O", "raw", str(dest)],
            pass_fds=(read_fd,), check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(read_fd)
    return dest.read_bytes()


def _info(path: str) -> dict:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.qemu
def test_it_makes_a_spare_overlay_and_renames_it_into_a_desktops_disk(qemu_hypervisor, qtest_prefix, tmp_path):  # noqa: F811
    hv = qemu_hypervisor
    pool_dir = Path(hv.pool_path("default"))
    # Given a plain base with data well inside it
    raw = tmp_path / "base.raw"
    with raw.open("wb") as handle:
        handle.truncate(32 * MIB)
        handle.seek(DEEP)
        handle.write(b"base-data-deep-inside")
    base = pool_dir / f"{qtest_prefix}base.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(base)], check=True)
    passphrase = os.urandom(32).hex().encode()
    disk = str(pool_dir / f"{qtest_prefix}desktop.qcow2")
    spare_name = f"{qtest_prefix}spare.qcow2"
    try:
        # When a spare is made for it (in the background) and later renamed into a desktop's disk
        spare = hv.encrypted_disk_create(
            "default", spare_name, passphrase, backing_path=str(base), backing_format="qcow2", capacity_bytes=64 * MIB
        )
        assert oct(os.stat(spare).st_mode & 0o777) == "0o600"
        path = hv.encrypted_disk_from_spare("default", f"{qtest_prefix}desktop.qcow2", spare)
        # Then the spare is gone and the disk is a LUKS overlay of the base at the planned size
        assert path == disk and not os.path.exists(spare)
        info = _info(disk)
        assert info["encrypted"] and info["virtual-size"] == 64 * MIB
        assert info["backing-filename"] == str(base) and info["format-specific"]["data"]["encrypt"]["format"] == "luks"
        # ...whose reads fall through to the base, while the file holds none of it
        data = _decrypted(disk, passphrase, tmp_path / "disk.raw")
        assert data[DEEP : DEEP + 21] == b"base-data-deep-inside"
        # And a retry after a crash, with the spare already renamed, finds the same disk
        assert hv.encrypted_disk_from_spare("default", f"{qtest_prefix}desktop.qcow2", spare) == disk
        # And a stopped desktop's disk grows with its key, keeping the base's data
        assert qemu_img.virtual_size(disk) == 64 * MIB
        qemu_img.grow_encrypted(disk, passphrase, 96 * MIB)
        assert qemu_img.virtual_size(disk) == 96 * MIB
        grown = _decrypted(disk, passphrase, tmp_path / "grown.raw")
        assert grown[DEEP : DEEP + 21] == b"base-data-deep-inside"
        # ...while a spare that is nowhere is reported, not invented
        with pytest.raises(VolumeNotFound):
            hv.encrypted_disk_from_spare("default", f"{qtest_prefix}other.qcow2", str(pool_dir / "qtest-missing.qcow2"))
    finally:
        for leftover in (disk, str(base), str(pool_dir / spare_name)):
            hv.encrypted_file_delete(leftover)


def test_it_passes_the_key_through_a_pipe_and_retries_only_the_calibration_flake(monkeypatch, tmp_path):
    """qemu-img is faked here only because its calibration flake cannot be caused on demand."""
    # Given qemu-img failing first with QEMU's calibration error, then succeeding
    calls: list[list[str]] = []
    real_run = subprocess.run

    def flaky(argv, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(argv)
        secret = next(a for a in argv if a.startswith("secret,"))
        fd = int(secret.rsplit("/", 1)[1])
        assert fd in kwargs["pass_fds"] and os.read(fd, 100) == b"k" * 64  # the key is only in the pipe
        if len(calls) == 1:
            return subprocess.CompletedProcess(argv, 1, "", f"qemu-img: {qemu_img.CALIBRATION_FLAKE}")
        Path(argv[-2]).write_bytes(b"")  # the file the real qemu-img would make
        return real_run(["true"], **kwargs)

    monkeypatch.setattr(qemu_img.subprocess, "run", flaky)
    target = tmp_path / "disk.qcow2"
    qemu_img.create_encrypted(str(target), b"k" * 64, MIB)
    assert len(calls) == 2 and all(b"k" * 64 not in " ".join(c).encode() for c in calls)
    # Any other error is not retried
    calls.clear()
    monkeypatch.setattr(
        qemu_img.subprocess,
        "run",
        lambda argv, **kw: calls.append(argv) or subprocess.CompletedProcess(argv, 1, "", "boom"),
    )
    with pytest.raises(qemu_img.OperationFailed, match="boom"):
        qemu_img.create_encrypted(str(target), b"k" * 64, MIB)
    assert len(calls) == 1
