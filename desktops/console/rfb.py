"""What a browser may send a desktop's VNC server: the tenant's clipboard and audio policy, applied to RFB messages.

The proxy parses the client's side of the RFB stream (handshake, then one message after another) and:
- drops ClientCutText, and Extended Clipboard messages that announce or provide data, when pasting into
  desktops is off;
- removes the Extended Clipboard pseudo-encoding from SetEncodings and drops clipboard requests when copying
  out of desktops is off. QEMU only sends clipboard contents to clients that negotiated that encoding
  (ui/vnc-clipboard.c registers the client as a clipboard peer only then), so nothing leaves the desktop;
- removes QEMU's audio pseudo-encoding and drops QEMU audio messages when desktop sound is off.
A message the parser does not know ends the connection: a policy that cannot be checked is not applied blindly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# RFB client message types (RFC 6143 and the registered extensions noVNC sends).
SET_PIXEL_FORMAT = 0
SET_ENCODINGS = 2
FRAMEBUFFER_UPDATE_REQUEST = 3
KEY_EVENT = 4
POINTER_EVENT = 5
CLIENT_CUT_TEXT = 6
ENABLE_CONTINUOUS_UPDATES = 150
CLIENT_FENCE = 248
XVP = 250
SET_DESKTOP_SIZE = 251
QEMU_CLIENT_MESSAGE = 255
QEMU_EXTENDED_KEY_EVENT = 0
QEMU_AUDIO = 1

ENCODING_EXTENDED_CLIPBOARD = 0xC0A1E5CE - (1 << 32)  # as the signed 32-bit value on the wire
ENCODING_QEMU_AUDIO = -259

# Extended Clipboard flags (the high byte says what the message does).
CLIPBOARD_CAPS = 1 << 24
CLIPBOARD_REQUEST = 1 << 25
CLIPBOARD_PEEK = 1 << 26
CLIPBOARD_NOTIFY = 1 << 27
CLIPBOARD_PROVIDE = 1 << 28
CLIPBOARD_TEXT_FLAG = 1  # the low bits say which formats; bit 0 is UTF-8 text

# Larger clipboard messages than this end the connection rather than being buffered.
MAX_CUT_TEXT_BYTES = 16 * 1024 * 1024

_FIXED_SIZES = {
    SET_PIXEL_FORMAT: 20,
    FRAMEBUFFER_UPDATE_REQUEST: 10,
    KEY_EVENT: 8,
    POINTER_EVENT: 6,
    ENABLE_CONTINUOUS_UPDATES: 10,
    XVP: 4,
}


class ProtocolViolation(Exception):
    """The client sent something the filter cannot check: the connection must end."""


@dataclass(frozen=True)
class ConsolePolicy:
    """What the tenant allows over this console."""

    clipboard_to_desktop: bool = True
    clipboard_from_desktop: bool = True
    audio: bool = True

    @property
    def restricts(self) -> bool:
        """Whether anything has to be filtered (if not, bytes pass untouched and unparsed)."""
        return not (self.clipboard_to_desktop and self.clipboard_from_desktop and self.audio)


@dataclass
class Dropped:
    """What the filter held back, for tests and the session's record."""

    clipboard_to_desktop: int = 0
    clipboard_requests: int = 0
    encodings_removed: int = 0
    audio_messages: int = 0


class ClientFilter:
    """Feed it the browser's bytes in any chunking; it returns the bytes that may go on to the VNC server."""

    def __init__(self, policy: ConsolePolicy) -> None:
        self.policy = policy
        self.dropped = Dropped()
        self._buffer = bytearray()
        # Client side of the handshake: version (12), security type (1), [VNC auth response (16)], ClientInit (1).
        self._stage = "version"

    def feed(self, data: bytes) -> bytes:
        """The allowed part of what arrived so far; an incomplete message waits for the rest."""
        if not self.policy.restricts:
            return data
        self._buffer += data
        out = bytearray()
        while True:
            size = self._next_size()
            if size is None or len(self._buffer) < size:
                break
            message = bytes(self._buffer[:size])
            del self._buffer[:size]
            out += self._judge(message)
        return bytes(out)

    # ------------------------------------------------------------------------------------ framing

    def _next_size(self) -> int | None:
        """The size of the next complete unit, or None until enough bytes arrived to know it."""
        buf = self._buffer
        if self._stage == "version":
            return 12
        if self._stage == "security":
            return 1
        if self._stage == "vnc-auth":
            return 16
        if self._stage == "init":
            return 1
        if not buf:
            return None
        kind = buf[0]
        if kind in _FIXED_SIZES:
            return _FIXED_SIZES[kind]
        if kind == SET_ENCODINGS:
            return None if len(buf) < 4 else 4 + 4 * struct.unpack_from(">H", buf, 2)[0]
        if kind == CLIENT_CUT_TEXT:
            if len(buf) < 8:
                return None
            length = abs(struct.unpack_from(">i", buf, 4)[0])
            if length > MAX_CUT_TEXT_BYTES:
                raise ProtocolViolation("clipboard message too large")
            return 8 + length
        if kind == CLIENT_FENCE:
            return None if len(buf) < 9 else 9 + buf[8]
        if kind == SET_DESKTOP_SIZE:
            return None if len(buf) < 8 else 8 + 16 * buf[6]
        if kind == QEMU_CLIENT_MESSAGE:
            if len(buf) < 2:
                return None
            if buf[1] == QEMU_EXTENDED_KEY_EVENT:
                return 12
            if buf[1] == QEMU_AUDIO:
                if len(buf) < 4:
                    return None
                operation = struct.unpack_from(">H", buf, 2)[0]
                return 10 if operation == 2 else 4  # 2 sets the sample format; 0/1 enable/disable
            raise ProtocolViolation(f"unknown QEMU client message {buf[1]}")
        raise ProtocolViolation(f"unknown client message type {kind}")

    # ------------------------------------------------------------------------------------ judging

    def _judge(self, message: bytes) -> bytes:
        stage = self._stage
        if stage == "version":
            if not message.startswith(b"RFB "):
                raise ProtocolViolation("not an RFB client")
            # 3.3 has the server pick the security type; the client sends no choice.
            self._stage = "init" if message[4:11] == b"003.003" else "security"
            return message
        if stage == "security":
            if message[0] not in (1, 2):
                raise ProtocolViolation(f"security type {message[0]} cannot be filtered")
            self._stage = "vnc-auth" if message[0] == 2 else "init"
            return message
        if stage == "vnc-auth":
            self._stage = "init"
            return message
        if stage == "init":
            self._stage = "messages"
            return message
        kind = message[0]
        if kind == SET_ENCODINGS:
            return self._encodings(message)
        if kind == CLIENT_CUT_TEXT:
            return self._cut_text(message)
        if kind == QEMU_CLIENT_MESSAGE and message[1] == QEMU_AUDIO and not self.policy.audio:
            self.dropped.audio_messages += 1
            return b""
        return message

    def _encodings(self, message: bytes) -> bytes:
        count = struct.unpack_from(">H", message, 2)[0]
        encodings = struct.unpack_from(f">{count}i", message, 4)
        banned = set()
        if not self.policy.clipboard_from_desktop:
            banned.add(ENCODING_EXTENDED_CLIPBOARD)
        if not self.policy.audio:
            banned.add(ENCODING_QEMU_AUDIO)
        kept = [e for e in encodings if e not in banned]
        self.dropped.encodings_removed += len(encodings) - len(kept)
        return struct.pack(f">BxH{len(kept)}i", SET_ENCODINGS, len(kept), *kept)

    def _cut_text(self, message: bytes) -> bytes:
        length = struct.unpack_from(">i", message, 4)[0]
        if length >= 0:
            # Plain ClientCutText: text for the desktop's clipboard.
            if self.policy.clipboard_to_desktop:
                return message
            self.dropped.clipboard_to_desktop += 1
            return b""
        if len(message) < 12:
            raise ProtocolViolation("extended clipboard message without flags")
        flags = struct.unpack_from(">I", message, 8)[0]
        carries_data = flags & (CLIPBOARD_PROVIDE | CLIPBOARD_NOTIFY)
        asks_for_data = flags & (CLIPBOARD_REQUEST | CLIPBOARD_PEEK)
        if carries_data and not self.policy.clipboard_to_desktop:
            self.dropped.clipboard_to_desktop += 1
            return b""
        if asks_for_data and not self.policy.clipboard_from_desktop:
            self.dropped.clipboard_requests += 1
            return b""
        return message
