"""A running domain's screen and input devices: libvirt's screenshot, send-key, and QEMU pointer events."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence

import libvirt

from hosts.hypervisor.errors import NotSupported, OperationFailed
from hosts.hypervisor.input import MAX_CHORD_KEYS, PointerEvent

__all__ = ["send_chord", "send_pointer", "take_screenshot"]

# A screen dump is width * height * 3 bytes at most (PPM); 64 MiB covers 8K screens and bounds a bad stream.
MAX_SCREENSHOT_BYTES = 64 * 1024 * 1024


def take_screenshot(conn: libvirt.virConnect, dom: libvirt.virDomain) -> tuple[bytes, str]:
    """The first screen's image as libvirt streams it (PNG or PPM, by the driver) and its MIME type."""
    stream = conn.newStream(0)
    buffer = bytearray()

    def collect(_stream: libvirt.virStream, data: bytes, sink: bytearray) -> int:
        sink.extend(data)
        if len(sink) > MAX_SCREENSHOT_BYTES:
            return -1  # recvAll aborts the stream
        return len(data)

    try:
        mime = dom.screenshot(stream, 0, 0)
        stream.recvAll(collect, buffer)
        stream.finish()
    except libvirt.libvirtError:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise
    except Exception as exc:  # recvAll raises a plain error when our handler refuses more data
        stream.abort()
        raise OperationFailed(f"screenshot larger than {MAX_SCREENSHOT_BYTES} bytes") from exc
    return bytes(buffer), mime or "application/octet-stream"


def send_chord(dom: libvirt.virDomain, codes: Sequence[int], hold_ms: int) -> None:
    """Press the Linux key codes in order, hold them hold_ms, release them (one virDomainSendKey)."""
    if not codes or len(codes) > MAX_CHORD_KEYS:
        raise OperationFailed(f"a chord has 1 to {MAX_CHORD_KEYS} keys")
    dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, hold_ms, list(codes), len(codes), 0)


def send_pointer(dom: libvirt.virDomain, steps: Sequence[PointerEvent], width: int, height: int) -> None:
    """Each step as one synchronised QEMU input-send-event (a press and its release in one sync would be lost)."""
    import libvirt_qemu  # pointer events exist only as a QEMU monitor command

    for step in steps:
        command = {"execute": "input-send-event", "arguments": {"events": step.qmp_events(width, height)}}
        try:
            reply = libvirt_qemu.qemuMonitorCommand(dom, json.dumps(command), 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                raise NotSupported("this host's driver takes no pointer events", libvirt_code=exc.get_error_code())
            raise
        answer = json.loads(reply)
        if "error" in answer:
            raise OperationFailed(f"QEMU refused the pointer event: {answer['error'].get('desc', answer['error'])}")
