"""The console's sound channel: authorised by the console's own ticket, once, and only where sound is allowed.

The VNC side is a small asyncio server speaking the audio part of QEMU's RFB (a stand-in: no guest plays
sound here; the graphical end-to-end test hears a real one).
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections.abc import AsyncIterator

import pytest
from channels.testing import WebsocketCommunicator

from desktops.console import opus, tickets
from desktops.console.audio import ENCODING_QEMU_AUDIO, FORMAT_S16, SAMPLE_RATE
from desktops.console.tests.fixtures import (  # noqa: F401 (fixtures)
    adb,
    browser,
    communicator,
    running_desktop,
    thread_connections_fixture,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("thread_connections")]

TONE = b"".join(
    struct.pack("<hh", v, v) for v in (int(8000 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE)) for i in range(4800))
)


class AudioVnc:
    """Accepts RFB clients; to one that asks for QEMU audio it sends TONE; to others just the greeting."""

    def __init__(self) -> None:
        self.server: asyncio.base_events.Server | None = None
        self.asked: list[bytes] = []
        self.clients = 0

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        try:
            writer.write(b"RFB 003.008\n")
            await reader.readexactly(12)
            writer.write(b"\x01\x01")
            await reader.readexactly(1)
            writer.write(struct.pack(">I", 0))
            await reader.readexactly(1)
            writer.write(struct.pack(">HH16sI", 640, 480, bytes(16), 4) + b"demo")
            encodings = await reader.readexactly(8)
            fmt = await reader.readexactly(10)
            enable = await reader.readexactly(4)
            self.asked.append(encodings + fmt + enable)
            # QEMU acknowledges the audio encoding with an empty pseudo rectangle first.
            writer.write(struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", 0, 0, 640, 480, ENCODING_QEMU_AUDIO))
            writer.write(struct.pack(">BBH", 255, 1, 1))  # begin
            for start in range(0, len(TONE), 6000):
                part = TONE[start : start + 6000]
                writer.write(struct.pack(">BBHI", 255, 1, 2, len(part)) + part)
            await writer.drain()
            await reader.read()  # until the proxy hangs up
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def audio_vnc() -> AsyncIterator[AudioVnc]:
    vnc = AudioVnc()
    vnc.server = await asyncio.start_server(vnc.handle, "127.0.0.1", 0)
    yield vnc
    vnc.server.close()


def audio_socket(desktop_id: int, *, ticket: str, headers, query: str = "") -> WebsocketCommunicator:
    from quetzal.asgi import application

    protocols = [tickets.BINARY_PROTOCOL, tickets.PROTOCOL_PREFIX + ticket]
    return WebsocketCommunicator(
        application, f"/ws/desktops/{desktop_id}/audio/{query}", headers=headers, subprotocols=protocols
    )


def dominant_hz(pcm: bytes) -> float:
    """The strongest frequency of the left channel of S16LE stereo (a Hann-windowed FFT)."""
    import numpy

    left = numpy.frombuffer(pcm, dtype="<i2")[0::2].astype(float)
    spectrum = numpy.abs(numpy.fft.rfft(left * numpy.hanning(len(left))))
    spectrum[0] = 0.0
    return float(numpy.fft.rfftfreq(len(left), 1 / SAMPLE_RATE)[int(numpy.argmax(spectrum))])


@pytest.fixture
def sound_template(template):
    template.sound = True
    template.save()
    return template


async def _console(desktop, who):
    """Open the console as the page does; returns (console socket, its ticket)."""
    ticket = await adb(who.ticket)(desktop)
    console = communicator(desktop.pk, ticket=ticket, headers=who.headers())
    connected, _ = await console.connect()
    assert connected
    await console.receive_from()  # the VNC greeting
    return console, ticket


async def test_it_relays_the_desktops_sound_on_the_consoles_own_ticket(alice, host, sound_template, audio_vnc):
    desktop = await adb(running_desktop)(alice, host, sound_template, audio_vnc.port)
    member = await adb(browser)(alice.member, alice.tenant)
    # given the console is open with its ticket
    console, ticket = await _console(desktop, member)
    # when the page opens the sound channel with the same ticket
    sound = audio_socket(desktop.pk, ticket=ticket, headers=member.headers())
    connected, _ = await sound.connect()
    assert connected
    # then it says the sound comes as raw PCM (the page did not ask for Opus)
    assert json.loads(await sound.receive_from(timeout=5)) == {"codec": "pcm", "rate": SAMPLE_RATE, "channels": 2}
    # and the proxy asked VNC for audio only (S16, stereo, 48 kHz, enabled) and relays the samples in order
    received = bytearray()
    while len(received) < len(TONE):
        received += await sound.receive_from(timeout=5)
    assert bytes(received) == TONE
    assert audio_vnc.asked == [
        struct.pack(">BxHi", 2, 1, ENCODING_QEMU_AUDIO)
        + struct.pack(">BBHBBI", 255, 1, 2, FORMAT_S16, 2, SAMPLE_RATE)
        + struct.pack(">BBH", 255, 1, 0)
    ]
    # when the same ticket is tried again for sound, then it is refused
    again = audio_socket(desktop.pk, ticket=ticket, headers=member.headers())
    await again.connect()
    assert (await again.receive_output(5))["code"] == 4410
    await sound.disconnect()
    await console.disconnect()


async def test_it_compresses_the_sound_with_opus_for_a_browser_that_asks(alice, host, sound_template, audio_vnc):
    desktop = await adb(running_desktop)(alice, host, sound_template, audio_vnc.port)
    member = await adb(browser)(alice.member, alice.tenant)
    console, ticket = await _console(desktop, member)
    # when the page, which can decode Opus, opens the sound channel asking for it
    sound = audio_socket(desktop.pk, ticket=ticket, headers=member.headers(), query="?codec=opus")
    connected, _ = await sound.connect()
    assert connected
    # then the proxy says Opus, and sends one packet per whole 20 ms of the desktop's sound
    assert json.loads(await sound.receive_from(timeout=5)) == {"codec": "opus", "rate": SAMPLE_RATE, "channels": 2}
    whole_frames = len(TONE) // opus.FRAME_BYTES
    packets = [await sound.receive_from(timeout=5) for _ in range(whole_frames)]
    assert await sound.receive_nothing(timeout=0.5)  # the last partial frame waits for its samples
    # and the packets are a small fraction of the PCM, and decode (as the browser's WebCodecs does) to the tone
    assert sum(map(len, packets)) < len(TONE) / 6
    decoder = opus.Decoder()
    heard = b"".join(decoder.decode(packet) for packet in packets)
    assert len(heard) == whole_frames * opus.FRAME_BYTES
    assert abs(dominant_hz(heard) - 440) < 15
    await sound.disconnect()
    await console.disconnect()


async def test_it_refuses_sound_without_an_open_console_or_to_another_tenant(
    alice, bob, host, sound_template, audio_vnc
):
    desktop = await adb(running_desktop)(alice, host, sound_template, audio_vnc.port)
    member = await adb(browser)(alice.member, alice.tenant)
    # a ticket the console never used does not open sound
    unused = await adb(member.ticket)(desktop)
    sound = audio_socket(desktop.pk, ticket=unused, headers=member.headers())
    await sound.connect()
    assert (await sound.receive_output(5))["code"] == 4410
    # bob's member, with alice's used ticket, gets "not found"
    console, ticket = await _console(desktop, member)
    stranger = await adb(browser)(bob.member, bob.tenant)
    theirs = audio_socket(desktop.pk, ticket=ticket, headers=stranger.headers())
    await theirs.connect()
    assert (await theirs.receive_output(5))["code"] == 4404
    await console.disconnect()
    assert audio_vnc.asked == []


async def test_it_refuses_sound_when_the_tenant_switched_it_off(alice, host, sound_template, audio_vnc):
    alice.tenant.audio_enabled = False
    await adb(alice.tenant.save)()
    desktop = await adb(running_desktop)(alice, host, sound_template, audio_vnc.port)
    member = await adb(browser)(alice.member, alice.tenant)
    console, ticket = await _console(desktop, member)
    sound = audio_socket(desktop.pk, ticket=ticket, headers=member.headers())
    await sound.connect()
    assert (await sound.receive_output(5))["code"] == 4403
    await console.disconnect()
    assert audio_vnc.asked == []
