"""The recording file: the desktop-to-browser byte stream as timestamped frames.

Layout: the 8-byte magic, then frames of a 12-byte header (milliseconds since the start, payload
length, both big-endian uint32, plus a reserved uint32) followed by the payload. The browser player
(static/js/replay.js) parses the same layout while the file downloads.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"QZREC01\n"
HEADER = struct.Struct(">III")
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


class RecordingWriter:
    """Appends frames in memory and writes them in batches from a worker thread."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
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
        handle.write(MAGIC)
        return handle

    async def open(self) -> None:
        """Create the file (and its folders) and start the clock."""
        self._file = await asyncio.to_thread(self._open_sync)
        self._size = len(MAGIC)
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
        await asyncio.to_thread(self._file.write, chunk)
        self._size += len(chunk)

    async def close(self) -> RecordingStats:
        """Write the rest, close the file and report what it holds."""
        await self.flush()
        if self._file is not None:
            await asyncio.to_thread(self._file.close)
            self._file = None
        return RecordingStats(size_bytes=self._size, frames=self._frames, duration_ms=self._last_ms)


def read_frames(path: Path) -> Iterator[tuple[int, bytes]]:
    """(milliseconds since start, payload) for every complete frame; a torn last frame is skipped."""
    with path.open("rb") as handle:
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


def stats_of(path: Path) -> RecordingStats:
    """Size, frames and duration of a recording file as it is on disk."""
    frames = 0
    last_ms = 0
    for elapsed_ms, _payload in read_frames(path):
        frames += 1
        last_ms = elapsed_ms
    return RecordingStats(size_bytes=path.stat().st_size, frames=frames, duration_ms=last_ms)
