"""The key-encryption key and the one place data keys are wrapped and unwrapped (AES-256-GCM).

A data key is 32 random bytes (a disk's LUKS passphrase, a tenant's recording key). The database
keeps only `wrap()`'s output: a version byte, a 12-byte nonce and the AES-GCM ciphertext with its
tag, bound to the row it belongs to by associated data, so a wrapped key copied onto another row
does not unwrap.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from quetzal.env import parse_kek

__all__ = [
    "DATA_KEY_BYTES",
    "Kek",
    "UnwrapError",
    "current_kek",
    "new_data_key",
    "passphrase",
    "seal",
    "unwrap",
    "wrap",
]

log = logging.getLogger(__name__)

DATA_KEY_BYTES = 32
WRAP_VERSION = 1
_NONCE_BYTES = 12


class UnwrapError(Exception):
    """A wrapped key that this KEK cannot open: another KEK, another row, or tampered bytes."""


@dataclass(frozen=True, repr=False)
class Kek:
    """A key-encryption key and its public id (recorded next to every key it wraps)."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise ValueError("a KEK is 32 bytes")

    def __repr__(self) -> str:
        return f"Kek(id={self.kek_id})"  # never the key itself

    @property
    def kek_id(self) -> str:
        """A stable, non-secret fingerprint: which KEK wrapped a row, without revealing it."""
        return hashlib.sha256(b"quetzal-kek-id\0" + self.key).hexdigest()[:16]


def _embedded_dev_kek(path: Path) -> bytes:
    """The development KEK under var/, generated on first use (make run, tests; never production)."""
    try:
        return parse_kek(path.read_text(), source=str(path))
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    text = base64.b64encode(os.urandom(32)).decode() + "\n"
    # Written whole and synced under a temporary name (mode 0600), then linked into place: a process
    # starting at the same moment (make run's web and worker) never reads a half-written, empty key,
    # and a crash never leaves one behind. os.link refuses an existing name, so one key wins.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return parse_kek(path.read_text(), source=str(path))  # another process made it first
    finally:
        os.unlink(temporary)
    log.warning(
        "No QUETZAL_KEK or QUETZAL_KEK_FILE set: generated an embedded development key-encryption key at %s. "
        "Production settings refuse to start without one.",
        path,
    )
    return parse_kek(text, source=str(path))


def current_kek() -> Kek:
    """The KEK new keys are wrapped under: the configured one, else the embedded development key."""
    configured = getattr(settings, "QUETZAL_KEK", None)
    if configured:
        return Kek(configured)
    return Kek(_embedded_dev_kek(Path(settings.QUETZAL_KEK_DEV_FILE)))


def new_data_key() -> bytes:
    """A fresh random data key."""
    return os.urandom(DATA_KEY_BYTES)


def passphrase(data_key: bytes) -> bytes:
    """The data key as LUKS passphrase text: QEMU insists that a secret's value is UTF-8."""
    return data_key.hex().encode()


def wrap(data_key: bytes, *, context: str, kek: Kek | None = None) -> tuple[bytes, str]:
    """(wrapped bytes, kek id) of data_key under kek (default: the current one), bound to context."""
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError("a data key is 32 bytes")
    return seal(data_key, context=context, kek=kek)


# A secret someone else issued (an identity provider's client secret) has its own length; unwrap() opens it.
MAX_SEALED_SECRET_BYTES = 4096


def seal(secret: bytes, *, context: str, kek: Kek | None = None) -> tuple[bytes, str]:
    """(sealed bytes, kek id) of a short secret of any length under kek, bound to context, in wrap()'s format."""
    if not 0 < len(secret) <= MAX_SEALED_SECRET_BYTES:
        raise ValueError(f"a sealed secret is 1 to {MAX_SEALED_SECRET_BYTES} bytes")
    kek = kek or current_kek()
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(kek.key).encrypt(nonce, secret, _aad(context))
    return bytes([WRAP_VERSION]) + nonce + sealed, kek.kek_id


def unwrap(wrapped: bytes | memoryview, *, context: str, kek_id: str, keks: Iterable[Kek] | None = None) -> bytes:
    """The data key inside wrapped; the KEK is picked by kek_id from keks (default: the current one)."""
    candidates = list(keks) if keks is not None else [current_kek()]
    kek = next((k for k in candidates if k.kek_id == kek_id), None)
    if kek is None:
        raise UnwrapError(f"the key was wrapped under KEK {kek_id}, which is not configured")
    wrapped = bytes(wrapped)
    if len(wrapped) < 1 + _NONCE_BYTES or wrapped[0] != WRAP_VERSION:
        raise UnwrapError("unknown wrapped-key format")
    nonce, sealed = wrapped[1 : 1 + _NONCE_BYTES], wrapped[1 + _NONCE_BYTES :]
    try:
        return AESGCM(kek.key).decrypt(nonce, sealed, _aad(context))
    except InvalidTag:
        raise UnwrapError("the wrapped key does not open under this KEK and row") from None


def _aad(context: str) -> bytes:
    return f"quetzal-data-key-v{WRAP_VERSION}|{context}".encode()
