"""Pinch-zoom on the console's remote screen, in Debian's Chromium at phone size with real touch input (CDP's
Input.dispatchTouchEvent, as a finger would): two fingers zoom the desktop continuously between fit and 3x, the
desktop's point between them staying there; a tap on the zoomed screen clicks the desktop's pixel under the finger,
one finger pans, pinching in stops at fit, and the Fit button resets a zoom.

A VNC stand-in answers behind the real console proxy: a desktop whose every pixel says where it is (its colour
encodes its x and y), so what is under a finger can be read off the visible canvas, and which records the pointer
events it receives.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from desktops.choices import ReadySignal
from desktops.services import readiness, spec
from desktops.tests.browser import chromium, sign_in  # noqa: F401  (fixture)
from desktops.tests.conftest import make_test_host
from desktops.tests.test_browser_pages import PHONE, base, processes, world  # noqa: F401  (fixtures)
from hosts.hypervisor import GraphicsSpec

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Y = 420
MIDDLE = 195  # the screen's middle on a 390-wide phone: every pinch here is centred on it
# The stand-in desktop: wider than the phone, so fit is well under 1:1, and tall enough that from 1.5x fit on it
# overflows the screen both ways (along a side it fits, noVNC centres it, and nothing stays under the fingers).
WIDTH, HEIGHT = 1024, 1600
MAX_ZOOM = 3


# --- the VNC stand-in ---------------------------------------------------------------------------------------------


def _pixel_row(y: int) -> bytes:
    """One row in the pixel format noVNC asks for (red in the lowest byte): red and green are x and y's low bytes,
    blue their high nibbles."""
    return b"".join(bytes((x & 0xFF, y & 0xFF, (x >> 8) | ((y >> 8) << 4), 0)) for x in range(WIDTH))


class VncStandIn:
    """A VNC server on loopback: no security, one desktop-sized raw screen, and a record of pointer events."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pointer: list[tuple[int, int, int]] = []  # (buttons, x, y) as received
        self.screen = b"".join(_pixel_row(y) for y in range(HEIGHT))
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()

    @staticmethod
    def _read(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _serve(self, conn: socket.socket) -> None:
        read = lambda size: self._read(conn, size)  # noqa: E731
        try:
            conn.sendall(b"RFB 003.008\n")
            read(12)
            conn.sendall(b"\x01\x01")  # one security type: none
            read(1)
            conn.sendall(b"\x00\x00\x00\x00")
            read(1)  # ClientInit
            pixel_format = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
            name = b"pinch"
            conn.sendall(struct.pack(">HH", WIDTH, HEIGHT) + pixel_format + struct.pack(">I", len(name)) + name)
            sent = False
            while True:
                kind = read(1)[0]
                if kind == 0:  # SetPixelFormat
                    read(19)
                elif kind == 2:  # SetEncodings
                    count = struct.unpack(">xH", read(3))[0]
                    read(4 * count)
                elif kind == 3:  # FramebufferUpdateRequest: the whole screen once, then nothing changes
                    read(9)
                    if not sent:
                        header = b"\x00\x00" + struct.pack(">H", 1) + struct.pack(">HHHHi", 0, 0, WIDTH, HEIGHT, 0)
                        conn.sendall(header + self.screen)
                        sent = True
                elif kind == 4:  # KeyEvent
                    read(7)
                elif kind == 5:  # PointerEvent
                    self.pointer.append(struct.unpack(">BHH", read(5)))
                elif kind == 6:  # ClientCutText
                    read(3)
                    read(struct.unpack(">I", read(4))[0])
                else:
                    raise ConnectionError(f"message {kind} not expected")
        except OSError:
            return
        finally:
            conn.close()

    def presses(self) -> list[tuple[int, int]]:
        """Where the left button went down."""
        return [(x, y) for buttons, x, y in list(self.pointer) if buttons & 1]


@pytest.fixture
def vnc():
    stand_in = VncStandIn()
    yield stand_in
    stand_in.close()


@pytest.fixture
def console_desktop(world, vnc, tmp_path):  # noqa: F811
    """The world's desktop running on a test-driver host whose VM's VNC is the stand-in, and ready for input."""
    desktop = world["mine"]
    host = make_test_host(tmp_path, name="kvm-pinch")
    desktop.host = host
    desktop.save(update_fields=["host"])
    domain = spec.domain_spec(desktop, disk_path="/dev/null", seed_path=None, image_copy=None, host=host)
    domain = dataclasses.replace(
        domain, graphics=GraphicsSpec(listen_address="127.0.0.1", autoport=False, port=vnc.port)
    )
    # The server process opens this test driver afresh: the VM is in its node file, and test-driver VMs from the
    # node file run from the start.
    node = Path(host.uri.removeprefix("test://"))
    node.write_text(node.read_text().replace("</node>", domain.to_xml() + "</node>"))
    readiness.mark_ready(desktop=desktop, signal=ReadySignal.SIMULATED)
    return desktop


# --- fingers -------------------------------------------------------------------------------------------------------


def _points(xs) -> list[dict]:
    return [{"x": x, "y": Y, "id": n} for n, x in enumerate(xs)]


def _move(cdp, start: tuple[int, ...], end: tuple[int, ...], steps: int = 5) -> None:
    for step in range(1, steps + 1):
        xs = [round(a + (b - a) * step / steps) for a, b in zip(start, end, strict=True)]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": _points(xs)})


def _fingers(cdp, start: tuple[int, int], end: tuple[int, int]) -> None:
    """Two fingers on one line at Y, from x positions `start` to `end` in five moves, then lifted."""
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": _points(start)})
    _move(cdp, start, end)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def _tap(cdp, x: int, y: int = Y) -> None:
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y, "id": 0}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def _drag(cdp, start: int, end: int) -> None:
    """One finger along Y, in ten moves (noVNC takes it for a drag past 50 px)."""
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": _points([start])})
    _move(cdp, (start,), (end,), steps=10)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


_WHERE = (
    "JSON.stringify({targets: [ARGS].map(x => (document.elementFromPoint(x, Y) || {}).id || "
    "(document.elementFromPoint(x, Y) || {}).tagName), app: (document.querySelector('[data-state]') || {dataset: {}})"
    ".dataset.state, scale: window.quetzalConsole.scale, pinched: window.quetzalConsole.pinched, "
    "zoom: window.quetzalConsole.zoom})"
)


def _where(page, xs: tuple[int, ...]) -> str:
    return page.evaluate(_WHERE.replace("ARGS", ", ".join(map(str, xs))).replace("Y", str(Y)))


def _gesture(page, cdp, start: tuple[int, int], end: tuple[int, int], expect: str) -> None:
    """The fingers' gesture until the page shows `expect`: a person pinches again when one was not taken.

    In the whole suite (not alone, even under load) a full CI saw a gesture now and then not taken at all; three
    tries keep that from failing the run, and a gesture no try makes work fails with what lay under the fingers.
    """
    seen = []
    for _ in range(3):
        _fingers(cdp, start, end)
        try:
            page.wait_for_function(expect, timeout=4_000)
            return
        except PlaywrightTimeout:
            seen.append(_where(page, start))
    raise AssertionError(f"the gesture {start} -> {end} never gave {expect}: {seen}")


# --- what the screen shows -----------------------------------------------------------------------------------------

# What the person sees: the displayed scale (the canvas's size on screen over its pixels, which are the desktop's
# pixels in view) and the desktop's pixel drawn under a point of the window, read off the canvas's own colours.
_CANVAS = "document.querySelector('#qc-screen canvas')"
_SCALE = f"(() => {{ const c = {_CANVAS}; return c.getBoundingClientRect().width / c.width; }})()"
_UNDER = """([x, y]) => {
  const c = document.querySelector('#qc-screen canvas');
  const r = c.getBoundingClientRect();
  if (x < r.left || x >= r.right || y < r.top || y >= r.bottom) return null;
  const px = Math.floor((x - r.left) * c.width / r.width), py = Math.floor((y - r.top) * c.height / r.height);
  const [red, green, blue] = c.getContext('2d').getImageData(px, py, 1, 1).data;
  return [red | ((blue & 15) << 8), green | ((blue >> 4) << 8)];
}"""


def _scale(page) -> float:
    return page.evaluate(_SCALE)


def _under(page, x: int, y: int = Y) -> tuple[int, int]:
    under = page.evaluate(_UNDER, [x, y])
    assert under is not None, f"({x}, {y}) is off the desktop's canvas"
    return tuple(under)


def _until(check, seconds: float = 10) -> None:
    """Until what noVNC sent has gone through the proxy to the stand-in."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)


def _near(a: tuple[int, int], b: tuple[int, int], pixels: int) -> bool:
    return abs(a[0] - b[0]) <= pixels and abs(a[1] - b[1]) <= pixels


def test_it_zooms_the_remote_screen_with_two_fingers_and_resets(alice, console_desktop, vnc, chromium, base):  # noqa: F811
    context = chromium.new_context(**PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page = sign_in(page, base, alice.member.email)
    page.goto(f"{base}/desktops/{console_desktop.pk}/console/")
    # Fingers on a settled page (styles and fonts in) and a desktop that takes input, as a person's would be
    page.wait_for_load_state("load")
    page.evaluate("document.fonts.ready")
    page.wait_for_selector('#console-app[data-state="connected"]', timeout=30_000)
    page.wait_for_function(f"() => ({_UNDER})([{MIDDLE}, {Y}]) !== null", timeout=15_000)
    assert page.evaluate(f"document.elementFromPoint({MIDDLE}, {Y}).closest('#qc-screen') !== null")
    state = "({scale: window.quetzalConsole.scale, pinched: window.quetzalConsole.pinched})"
    scale = page.locator('[data-cmd="scale"]')
    assert page.evaluate(state) == {"scale": True, "pinched": False} and scale.inner_text() == "Fit"
    fit = _scale(page)
    assert 0.3 < fit < 0.5, fit  # the whole 1024-wide desktop across the phone
    pinned = _under(page, MIDDLE)
    cdp = context.new_cdp_session(page)
    # Touch events reach the page's handlers after CDP has sent them: wait for what they do. (On a loaded CI the
    # browser once took the fingers for its own pan/zoom and cancelled them: the screen now says touch-action: none.)
    zoomed = "window.quetzalConsole.pinched === true && window.quetzalConsole.scale === false"
    fitted = "window.quetzalConsole.pinched === false && window.quetzalConsole.scale === true"

    # Two fingers spreading to 1.5x and then 2x their distance: the desktop grows with them, continuously
    start, wider, widest = (165, 225), (150, 240), (135, 255)
    grown = lambda ratio: f"Math.abs({_SCALE} - {ratio * fit}) < {0.03 * fit}"  # noqa: E731
    for attempt in range(3):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": _points(start)})
        _move(cdp, start, wider)
        try:
            page.wait_for_function(grown(1.5), timeout=4_000)
            break
        except PlaywrightTimeout:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
            assert attempt < 2, f"spreading fingers never zoomed: {_where(page, start)}, scale {_scale(page)}"
    at_wider, under_wider = _scale(page), _under(page, MIDDLE)
    _move(cdp, wider, widest)
    page.wait_for_function(grown(2), timeout=4_000)
    at_widest, under_widest = _scale(page), _under(page, MIDDLE)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert fit < at_wider < at_widest < MAX_ZOOM, (fit, at_wider, at_widest)
    # The desktop's pixel between the fingers stayed between them
    assert _near(under_wider, pinned, 3) and _near(under_widest, pinned, 3), (pinned, under_wider, under_widest)
    assert page.evaluate(state) == {"scale": False, "pinched": True}
    # The scale button says how far (pinch zoom is no longer only 1:1)
    assert scale.inner_text() == f"{round(page.evaluate('window.quetzalConsole.zoom') * 100)}%"

    # A tap on the zoomed desktop clicks the desktop's pixel under the finger
    _tap(cdp, 120)
    shown = _under(page, 120)
    _until(vnc.presses)
    assert vnc.presses() and _near(vnc.presses()[-1], shown, 2), (vnc.presses(), shown)

    # One finger pans the zoomed desktop: what was under it moves with it, and nothing is clicked
    presses = len(vnc.presses())
    grabbed = _under(page, MIDDLE)
    _drag(cdp, MIDDLE, MIDDLE - 100)
    page.wait_for_function(f"() => ({_UNDER})([{MIDDLE - 100}, {Y}])[0] > {grabbed[0] - 5}", timeout=4_000)
    assert _near(_under(page, MIDDLE - 100), grabbed, 3), (grabbed, _under(page, MIDDLE - 100))
    assert len(vnc.presses()) == presses
    assert _scale(page) == pytest.approx(at_widest, rel=0.01)

    # Turning the phone (or any resize of the window) keeps the zoom, and turning it back too
    page.set_viewport_size({"width": 844, "height": 390})
    page.wait_for_function("document.getElementById('qc-screen').getBoundingClientRect().width > 800")
    page.wait_for_function(f"Math.abs({_SCALE} - {at_widest}) < 0.01", timeout=4_000)
    assert page.evaluate(state) == {"scale": False, "pinched": True}
    page.set_viewport_size(PHONE["viewport"])
    page.wait_for_function("document.getElementById('qc-screen').getBoundingClientRect().width < 400")
    page.wait_for_function(f"Math.abs({_SCALE} - {at_widest}) < 0.01", timeout=4_000)

    # Pinching in past fit stops at fit
    _gesture(page, cdp, widest, (190, 200), fitted)
    assert page.evaluate(state) == {"scale": True, "pinched": False} and scale.inner_text() == "Fit"
    assert _scale(page) == pytest.approx(fit, rel=0.01)
    # Fingers that hardly move change nothing
    _fingers(cdp, (150, 240), (145, 245))
    assert page.evaluate(state) == {"scale": True, "pinched": False}
    assert _scale(page) == pytest.approx(fit, rel=0.01)
    # And the Fit button undoes a zoom
    _gesture(page, cdp, start, widest, zoomed)
    scale.click()
    assert page.evaluate(state) == {"scale": True, "pinched": False} and scale.inner_text() == "Fit"
    assert page.evaluate("window.quetzalConsole.zoom") is None and _scale(page) == pytest.approx(fit, rel=0.01)
    # A quick double tap on a zoomed desktop fits it too: the first tap clicks, the second only fits
    _gesture(page, cdp, start, widest, zoomed)
    for attempt in range(3):
        presses = len(vnc.presses())
        _tap(cdp, 200)
        _tap(cdp, 202)
        try:
            page.wait_for_function(fitted, timeout=4_000)
            break
        except PlaywrightTimeout:  # a loaded machine took longer between the taps than a double tap allows
            assert attempt < 2, f"a double tap never fitted: {_where(page, (200,))}"
    assert _scale(page) == pytest.approx(fit, rel=0.01) and scale.inner_text() == "Fit"
    _until(lambda: len(vnc.presses()) > presses)
    page.wait_for_timeout(300)  # and a second press, were there one, too
    assert len(vnc.presses()) == presses + 1, vnc.presses()
    # No script failed on the way (noVNC's gesture handler throws at a finger's lift it never saw start)
    assert not errors, errors
    context.close()
