"""The tenant's clipboard and sound rules, applied by the proxy to what a browser sends a desktop's VNC server."""

from __future__ import annotations

import asyncio
import struct

import pytest

from desktops.console.rfb import (
    CLIPBOARD_CAPS,
    CLIPBOARD_NOTIFY,
    CLIPBOARD_PROVIDE,
    CLIPBOARD_REQUEST,
    CLIPBOARD_TEXT_FLAG,
    ENCODING_EXTENDED_CLIPBOARD,
    ENCODING_QEMU_AUDIO,
    ClientFilter,
    ConsolePolicy,
    ProtocolViolation,
)
from desktops.console.tests.fixtures import (  # noqa: F401 (fixtures)
    adb,
    browser,
    communicator,
    fake_vnc_fixture,
    running_desktop,
    thread_connections_fixture,
)

HANDSHAKE = b"RFB 003.008\n" + b"\x01" + b"\x01"  # version, security type None, ClientInit (shared)
KEY_A = bytes([4, 1, 0, 0, 0, 0, 0, 0x61])
POINTER = bytes([5, 0, 0, 10, 0, 20])
UPDATE_REQUEST = bytes([3, 1, 0, 0, 0, 0, 4, 0, 3, 0])
EXTENDED_KEY = bytes([255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0x1E])


def set_encodings(*encodings: int) -> bytes:
    return struct.pack(f">BxH{len(encodings)}i", 2, len(encodings), *encodings)


def cut_text(text: bytes) -> bytes:
    return struct.pack(">BxxxI", 6, len(text)) + text


def extended_cut_text(flags: int, payload: bytes = b"") -> bytes:
    return struct.pack(">Bxxxi", 6, -(4 + len(payload))) + struct.pack(">I", flags) + payload


def audio(operation: int) -> bytes:
    if operation == 2:
        return struct.pack(">BBHBBI", 255, 1, 2, 3, 2, 48000)
    return struct.pack(">BBH", 255, 1, operation)


ENCODINGS = (16, 7, 0, -223, -308, ENCODING_EXTENDED_CLIPBOARD, ENCODING_QEMU_AUDIO, -258)
PASTE = cut_text(b"secret from the laptop")
PROVIDE = extended_cut_text(CLIPBOARD_PROVIDE | CLIPBOARD_TEXT_FLAG, b"x\x9c compressed")
NOTIFY = extended_cut_text(CLIPBOARD_NOTIFY | CLIPBOARD_TEXT_FLAG)
REQUEST = extended_cut_text(CLIPBOARD_REQUEST | CLIPBOARD_TEXT_FLAG)
CAPS = extended_cut_text(CLIPBOARD_CAPS | CLIPBOARD_TEXT_FLAG, struct.pack(">I", 1 << 20))
SESSION = [set_encodings(*ENCODINGS), KEY_A, PASTE, POINTER, PROVIDE, NOTIFY, REQUEST, CAPS, audio(2), audio(0)]
SESSION += [UPDATE_REQUEST, EXTENDED_KEY]


def through(policy: ConsolePolicy, chunk: int = 0) -> tuple[bytes, ClientFilter]:
    """Everything a browser sends in one session, fed in chunks of `chunk` bytes (0: message by message)."""
    stream = HANDSHAKE + b"".join(SESSION)
    filt = ClientFilter(policy)
    if chunk:
        out = b"".join(filt.feed(stream[i : i + chunk]) for i in range(0, len(stream), chunk))
    else:
        out = filt.feed(HANDSHAKE) + b"".join(filt.feed(m) for m in SESSION)
    return out, filt


def test_it_passes_everything_untouched_when_the_tenant_allows_everything() -> None:
    out, _ = through(ConsolePolicy())
    assert out == HANDSHAKE + b"".join(SESSION)


@pytest.mark.parametrize("chunk", [0, 1, 7, 1000])
def test_it_drops_what_would_paste_into_the_desktop(chunk: int) -> None:
    out, filt = through(ConsolePolicy(clipboard_to_desktop=False), chunk)
    # then the legacy text, the extended announce and provide are gone; everything else is there in order
    kept = [m for m in SESSION if m not in (PASTE, PROVIDE, NOTIFY)]
    assert out == HANDSHAKE + b"".join(kept)
    assert filt.dropped.clipboard_to_desktop == 3


def test_it_keeps_the_desktops_clipboard_from_leaving() -> None:
    out, filt = through(ConsolePolicy(clipboard_from_desktop=False))
    # the extended clipboard is not negotiated (QEMU then never sends clipboard data) and requests are dropped
    without = set_encodings(*(e for e in ENCODINGS if e != ENCODING_EXTENDED_CLIPBOARD))
    kept = [without if m == SESSION[0] else m for m in SESSION if m != REQUEST]
    assert out == HANDSHAKE + b"".join(kept)
    assert (filt.dropped.encodings_removed, filt.dropped.clipboard_requests) == (1, 1)
    assert PASTE in out  # pasting in is still allowed


def test_it_switches_sound_off() -> None:
    out, filt = through(ConsolePolicy(audio=False))
    assert struct.pack(">i", ENCODING_QEMU_AUDIO) not in out
    assert audio(0) not in out and audio(2) not in out
    assert filt.dropped.audio_messages == 2 and PASTE in out and KEY_A in out


def test_it_ends_the_connection_on_what_it_cannot_check() -> None:
    filt = ClientFilter(ConsolePolicy(clipboard_to_desktop=False))
    filt.feed(HANDSHAKE)
    with pytest.raises(ProtocolViolation):
        filt.feed(bytes([77, 0, 0, 0]))
    with pytest.raises(ProtocolViolation, match="too large"):
        ClientFilter(ConsolePolicy(audio=False)).feed(HANDSHAKE + struct.pack(">BxxxI", 6, 1 << 30))
    with pytest.raises(ProtocolViolation, match="security type"):
        ClientFilter(ConsolePolicy(audio=False)).feed(b"RFB 003.008\n\x13")


pytestmark_db = pytest.mark.django_db(transaction=True)


@pytestmark_db
@pytest.mark.usefixtures("thread_connections")
async def test_it_enforces_the_tenant_policy_in_the_proxy(alice, bob, host, template, fake_vnc):
    # given alice's tenant forbids pasting into desktops (bob's allows it)
    alice.tenant.clipboard_to_desktop = False
    await adb(alice.tenant.save)()
    desktop = await adb(running_desktop)(alice, host, template, fake_vnc.port)
    member = await adb(browser)(alice.member, alice.tenant)
    client = communicator(desktop.pk, ticket=await adb(member.ticket)(desktop), headers=member.headers())
    connected, _ = await client.connect()
    assert connected
    await client.receive_from()
    # when the browser sends the handshake, a paste and a key press
    await client.send_to(bytes_data=HANDSHAKE)
    await client.send_to(bytes_data=PASTE)
    await client.send_to(bytes_data=KEY_A)
    # then VNC gets the handshake and the key, never the pasted text
    assert await fake_vnc.wait_received(len(HANDSHAKE) + len(KEY_A)) == HANDSHAKE + KEY_A
    await asyncio.sleep(0.2)
    assert b"secret" not in bytes(fake_vnc.received)
    await client.disconnect()
