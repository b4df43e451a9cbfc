"""Opus for the console's sound: the desktop's PCM (1.5 Mbit/s) compressed to about 96 kbit/s for the browser.

A small ctypes binding of the system's libopus (Debian's libopus0, which Chromium itself links): only the calls
the relay needs, so no compiled Python package. Without the library the relay sends raw PCM, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

SAMPLE_RATE = 48_000
CHANNELS = 2
FRAME_SAMPLES = 960  # 20 ms per packet: Opus's usual frame, and what WebCodecs decodes without configuration
FRAME_BYTES = FRAME_SAMPLES * CHANNELS * 2  # signed 16-bit
BITRATE = 96_000
# A 20 ms packet is far smaller at this rate; RFC 6716 caps one frame at 1275 bytes.
MAX_PACKET = 1500

_APPLICATION_AUDIO = 2049
_SET_BITRATE_REQUEST = 4002
_OK = 0


class OpusError(Exception):
    """libopus refused a call (its own error text is in the message)."""


@functools.cache
def _library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("opus")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_encode.restype = ctypes.c_int32
    lib.opus_encode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int32]
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_decode.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
    ]  # fmt: skip
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [ctypes.c_int]
    return lib


def available() -> bool:
    """Whether this machine can compress sound (libopus is installed)."""
    return _library() is not None


def _check(lib: ctypes.CDLL, code: int) -> int:
    if code < _OK:
        raise OpusError(lib.opus_strerror(code).decode())
    return code


class Encoder:
    """Stereo 48 kHz S16LE in whole 20 ms frames, one Opus packet out per frame."""

    def __init__(self, bitrate: int = BITRATE) -> None:
        lib = _library()
        if lib is None:
            raise OpusError("libopus is not installed")
        error = ctypes.c_int()
        self._lib = lib
        self._state = lib.opus_encoder_create(SAMPLE_RATE, CHANNELS, _APPLICATION_AUDIO, ctypes.byref(error))
        _check(lib, error.value)
        # opus_encoder_ctl is variadic: the request and its one int argument, as C passes them.
        _check(lib, lib.opus_encoder_ctl(ctypes.c_void_p(self._state), _SET_BITRATE_REQUEST, ctypes.c_int32(bitrate)))
        self._out = ctypes.create_string_buffer(MAX_PACKET)

    def encode(self, frame: bytes) -> bytes:
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"an Opus frame here is {FRAME_BYTES} bytes of PCM, not {len(frame)}")
        size = _check(self._lib, self._lib.opus_encode(self._state, frame, FRAME_SAMPLES, self._out, MAX_PACKET))
        return self._out.raw[:size]

    def close(self) -> None:
        if self._state:
            self._lib.opus_encoder_destroy(self._state)
            self._state = None

    __del__ = close


class Decoder:
    """The other way (the tests hear what the relay sent, as the browser's WebCodecs would)."""

    def __init__(self) -> None:
        lib = _library()
        if lib is None:
            raise OpusError("libopus is not installed")
        error = ctypes.c_int()
        self._lib = lib
        self._state = lib.opus_decoder_create(SAMPLE_RATE, CHANNELS, ctypes.byref(error))
        _check(lib, error.value)
        self._out = ctypes.create_string_buffer(FRAME_BYTES * 6)  # up to 120 ms in one packet

    def decode(self, packet: bytes) -> bytes:
        samples = _check(
            self._lib, self._lib.opus_decode(self._state, packet, len(packet), self._out, FRAME_SAMPLES * 6, 0)
        )
        return self._out.raw[: samples * CHANNELS * 2]

    def close(self) -> None:
        if self._state:
            self._lib.opus_decoder_destroy(self._state)
            self._state = None

    __del__ = close
