"""SHA-256 of disk images and boot files, read in chunks: images are many GB."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK = 1024 * 1024


def sha256_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """(hex SHA-256, byte count) of a stream of chunks, consumed once."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    return sha256_chunks(file_chunks(path))[0]
