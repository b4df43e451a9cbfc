"""The recording file: the desktop-to-browser byte stream as timestamped frames, sealed at rest.

Plain layout (what the browser player, static/js/replay.js, parses while it downloads): the 8-byte
magic, then frames of a 12-byte header (milliseconds since the start, payload length, both
big-endian uint32, plus a reserved uint32) followed by the payload.

On disk, with the tenant's recording key, that byte stream is sealed: SEALED_MAGIC, a 16-byte salt,
then records of a big-endian uint32 length and one AES-256-GCM ciphertext of a written batch. The
file's own key is HKDF(tenant key, salt); record n uses nonce n, so records cannot be reordered or
dropped from the middle unnoticed. A torn last record reads like a torn last frame: skipped.
"""

from __future__ import annotations

import asyncio
import io
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"QZREC01\n"
SEALED_MAGIC = b"QZRECS1\n"
HEADER = struct.Struct(">III")
_RECORD = struct.Struct(">I")
_SALT_BYTES = 16
_TAG_BYTES = 16
# Frames are written in batches: one small write per VNC read would make the disk the bottleneck.
FLUSH_BYTES = 256 * 1024


class RecordingFormatError(ValueError):
    """The file is not a recording, or is cut short in a way that cannot be read."""


@dataclass(frozen=True)
class RecordingStats:
    """What a finished (or salvaged) recording holds."""

    size_bytes: int
    frames: int
    duration_ms: int


def _file_cipher(key: bytes, salt: bytes) -> AESGCM:
    """The AEAD of one recording file: a key of its own, derived from the tenant's and the file's salt."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"quetzal-recording-v1").derive(key)
    return AESGCM(derived)


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


class RecordingWriter:
    """Appends frames in memory and writes them in batches from a worker thread (sealed when keyed)."""

    def __init__(self, path: Path, *, key: bytes | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._key = key
        self._cipher: AESGCM | None = None
        self._records = 0
        self._clock = clock
        self._start = 0.0
        self._file: BinaryIO | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._size = 0
        self._frames = 0
        self._last_ms = 0

    def _open_sync(self) -> BinaryIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Recordings show people's screens: readable by the service account only.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        handle = os.fdopen(fd, "wb")
        if self._key is None:
            handle.write(MAGIC)
            self._size = len(MAGIC)
        else:
            salt = os.urandom(_SALT_BYTES)
            self._cipher = _file_cipher(self._key, salt)
            handle.write(SEALED_MAGIC + salt)
            self._size = len(SEALED_MAGIC) + _SALT_BYTES
            # The plain stream starts with the magic, so a decrypted file is byte for byte a plain one.
            self._pending.append(MAGIC)
            self._pending_bytes += len(MAGIC)
        return handle

    async def open(self) -> None:
        """Create the file (and its folders) and start the clock."""
        self._file = await asyncio.to_thread(self._open_sync)
        self._start = self._clock()

    @property
    def should_flush(self) -> bool:
        return self._pending_bytes >= FLUSH_BYTES

    def append(self, data: bytes) -> None:
        """Stamp and queue one chunk of the stream (cheap: no I/O here)."""
        elapsed_ms = int((self._clock() - self._start) * 1000)
        self._last_ms = elapsed_ms
        header = HEADER.pack(elapsed_ms, len(data), 0)
        self._pending.append(header)
        self._pending.append(data)
        self._pending_bytes += len(header) + len(data)
        self._frames += 1

    async def flush(self) -> None:
        """Write what is queued."""
        if not self._pending or self._file is None:
            return
        chunk = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if self._cipher is not None:
            sealed = self._cipher.encrypt(_nonce(self._records), chunk, None)
            self._records += 1
            chunk = _RECORD.pack(len(sealed)) + sealed
        await asyncio.to_thread(self._file.write, chunk)
        self._size += len(chunk)

    async def close(self) -> RecordingStats:
        """Write the rest, close the file and report what it holds."""
        await self.flush()
        if self._file is not None:
            await asyncio.to_thread(self._file.close)
            self._file = None
        return RecordingStats(size_bytes=self._size, frames=self._frames, duration_ms=self._last_ms)


class PlainReader(io.RawIOBase):
    """The plain byte stream of a recording file, sealed or not, decrypted as it is read."""

    def __init__(self, path: Path, *, key: bytes | None = None) -> None:
        self._handle: BinaryIO = path.open("rb")
        self._buffer = b""
        self._cipher: AESGCM | None = None
        self._records = 0
        head = self._handle.read(len(MAGIC))
        if head == MAGIC:
            self._buffer = head  # a recording made before sealing: passed through as it is
        elif head == SEALED_MAGIC:
            if key is None:
                self._handle.close()
                raise RecordingFormatError(f"{path.name} is sealed and no key was given.")
            self._cipher = _file_cipher(key, self._handle.read(_SALT_BYTES))
        else:
            self._handle.close()
            raise RecordingFormatError(f"{path.name} is not a Quetzal console recording.")

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        if self._cipher is None:
            return self._handle.read(FLUSH_BYTES)
        header = self._handle.read(_RECORD.size)
        if len(header) < _RECORD.size:
            return b""
        (length,) = _RECORD.unpack(header)
        sealed = self._handle.read(length)
        if len(sealed) < length or length < _TAG_BYTES:
            return b""  # a torn last record: what came before still replays
        try:
            chunk = self._cipher.decrypt(_nonce(self._records), sealed, None)
        except InvalidTag:
            raise RecordingFormatError("the recording does not open with this tenant's key") from None
        self._records += 1
        return chunk

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        while not self._buffer:
            self._buffer = self._next_chunk()
            if not self._buffer:
                return 0
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        self._handle.close()
        super().close()


def read_frames(path: Path, *, key: bytes | None = None) -> Iterator[tuple[int, bytes]]:
    """(milliseconds since start, payload) for every complete frame; a torn last frame is skipped."""
    with io.BufferedReader(PlainReader(path, key=key)) as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise RecordingFormatError(f"{path.name} is not a Quetzal console recording.")
        while True:
            header = handle.read(HEADER.size)
            if len(header) < HEADER.size:
                return
            elapsed_ms, length, _reserved = HEADER.unpack(header)
            payload = handle.read(length)
            if len(payload) < length:
                # A proxy killed mid-write leaves half a frame; everything before it still replays.
                return
            yield elapsed_ms, payload


def stats_of(path: Path, *, key: bytes | None = None) -> RecordingStats:
    """Size (on disk), frames and duration of a recording file as it is on disk."""
    frames = 0
    last_ms = 0
    for elapsed_ms, _payload in read_frames(path, key=key):
        frames += 1
        last_ms = elapsed_ms
    return RecordingStats(size_bytes=path.stat().st_size, frames=frames, duration_ms=last_ms)
