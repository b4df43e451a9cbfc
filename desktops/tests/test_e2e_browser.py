"""End to end in a real browser: log in, launch the demo desktop, type into it through Quetzal's console.

Chromium (Debian's, driven by Playwright) talks only to a real ASGI server (uvicorn, the production
one, in a subprocess on the test database); a real Celery worker process boots the desktop on a real libvirtd + QEMU.
The marker typed in the browser is proved to have reached the guest through the guest's own screen,
which it mirrors to its serial log. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import base64
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections

from desktops.choices import OperationKind
from desktops.console.models import ConsoleSession, Recording
from desktops.models import Desktop
from desktops.services import spec
from desktops.services.requests import request_action
from desktops.tests.browser import sign_in
from desktops.tests.qemu_world import demo_template, qemu_host, start_worker  # noqa: F401
from hosts import demo_image
from tests.processes import ROOT, child_env, require_shared_services, start_asgi_server
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.qemu, pytest.mark.worker]

ARTIFACTS = ROOT / "test-artifacts"
LAUNCH_TIMEOUT_MS = 240_000
STOP_TIMEOUT_MS = 120_000
CONNECT_TIMEOUT_MS = 60_000
GUEST_TIMEOUT_S = 90
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
# The live frame and the replayed one may differ by the blinking text cursor (one 9x16 cell).
MAX_DIFFERENT_PIXELS = 9 * 16


@pytest.fixture
def asgi_server(transactional_db, tmp_path) -> Iterator[str]:
    """Quetzal under its production ASGI server on a free port against the test database."""
    require_shared_services("the server process")
    server, base = start_asgi_server(
        env=child_env(QUETZAL_VAR_DIR=str(tmp_path / "var")), log_path=tmp_path / "server.log"
    )
    try:
        yield base
    finally:
        server.stop(15)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(server.log_path, ARTIFACTS / "e2e-server.log")


def _sign_in(context, base: str, email: str):
    page = context.new_page()
    _OPEN_PAGES.append(page)
    return sign_in(page, base, email)


# The newest page, kept so a failure leaves a screenshot and the HTML behind.
_OPEN_PAGES: list = []


def _save_failure_artifacts() -> None:
    if not _OPEN_PAGES:
        return
    page = _OPEN_PAGES[-1]
    try:
        page.screenshot(path=str(ARTIFACTS / "e2e-failure.png"))
        (ARTIFACTS / "e2e-failure.html").write_text(f"<!-- {page.url} -->\n" + page.content())
    except Exception:  # the page may be gone; the original failure is what matters
        pass


def _launch_demo(page, base: str) -> int:
    """Click Launch on the Demo Linux card and follow the portal to the console page."""
    card = page.locator(".template-card", has_text="Demo Linux")
    card.locator("button.launch").click()
    page.wait_for_url(re.compile(r".*/desktops/\d+/console/$"), timeout=LAUNCH_TIMEOUT_MS)
    page.wait_for_selector('#console-app[data-state="connected"]', timeout=CONNECT_TIMEOUT_MS)
    return int(re.search(r"/desktops/(\d+)/console/", page.url).group(1))


def _guest_screen(desktop: Desktop):
    return demo_image.last_screen(Path(spec.serial_log_path(desktop)).read_text(errors="replace"))


def _wait_for_line(desktop: Desktop, line: str) -> demo_image.Screen:
    """Wait until the guest's own screen (mirrored to its serial log) shows `line` on a line of its own."""

    def shown():
        screen = _guest_screen(desktop)
        return screen if screen is not None and line in screen.lines else None

    deadline = time.monotonic() + GUEST_TIMEOUT_S
    while time.monotonic() < deadline:
        screen = shown()
        if screen:
            return screen
        time.sleep(0.3)
    last = _guest_screen(desktop)
    pytest.fail(f"the guest never showed {line!r}; its screen:\n{last.text if last else '(none yet)'}")


_FRAMEBUFFER_JS = """() => {
    const image = RFB.getImageData();
    let text = "";
    for (let i = 0; i < image.data.length; i += 0x8000) {
        text += String.fromCharCode.apply(null, image.data.subarray(i, i + 0x8000));
    }
    return [image.width, image.height, btoa(text)];
}"""


def _framebuffer(page, rfb: str) -> tuple[int, int, bytes]:
    """The RGBA pixels of a noVNC instance in the page, at the desktop's own resolution."""
    width, height, data = page.evaluate(_FRAMEBUFFER_JS.replace("RFB", rfb))
    return width, height, base64.b64decode(data)


def _different_pixels(a: bytes, b: bytes) -> int:
    return sum(1 for i in range(0, len(a), 4) if a[i : i + 3] != b[i : i + 3])


def test_it_types_into_the_demo_desktop_through_the_browser_console(
    alice,
    demo_template,  # noqa: F811 (fixture)
    qemu_host,  # noqa: F811
    start_worker,  # noqa: F811
    asgi_server,
    chromium,
):
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    base = asgi_server
    # Given a tenant that records console sessions, a worker, and the Demo Linux template on a real host
    alice.tenant.recording_enabled = True
    alice.tenant.save()
    start_worker()
    desktop = None
    try:
        # When a member signs in through the real login page and launches Demo Linux from the portal
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        page = _sign_in(context, base, alice.member.email)
        desktop = Desktop.objects.get(pk=_launch_demo(page, base))
        assert desktop.user_id == alice.member.pk and desktop.template_id == demo_template.pk
        # Then the console connects through Quetzal's proxy and the guest reaches its shell
        wait_until(
            lambda: demo_image.READY_BANNER in Path(spec.serial_log_path(desktop)).read_text(errors="replace"),
            GUEST_TIMEOUT_S,
        )
        wait_until(lambda: (s := _guest_screen(desktop)) is not None and demo_image.PROMPT in s.text, GUEST_TIMEOUT_S)
        # When the person types a command with a unique marker into the console
        marker = f"qz{uuid.uuid4().hex[:12]}"
        page.locator("#qc-screen canvas").click()
        page.keyboard.type(f"echo {marker}", delay=40)
        page.keyboard.press("Enter")
        # Then the command ran in the guest: its output line is the marker alone
        _wait_for_line(desktop, marker)
        # When text with capitals goes through the clipboard panel's "Type it" (Shift is pressed for them)
        shouted = f"QZ{uuid.uuid4().hex[:10].upper()}"
        page.locator('[data-testid="clipboard"]').click()
        page.fill('[data-testid="clipboard-text"]', f"echo {shouted}\n")
        page.locator('#qc-clipboard [data-cmd="clip-type"]').click()
        # Then the guest got the capitals, not their lower-case keys
        _wait_for_line(desktop, shouted)
        page.locator('[data-testid="clipboard"]').click()
        page.wait_for_timeout(1500)  # let the last screen updates reach the browser
        page.screenshot(path=str(ARTIFACTS / "e2e-console-desktop.png"))
        live = _framebuffer(page, "window.quetzalConsole.rfb")
        assert live[0] * live[1] * 4 == len(live[2]) and len(set(live[2][0::4])) > 1, "the console shows nothing"
        page.goto(f"{base}/")  # leaving the page closes the console
        context.close()

        # When the same person opens it from a phone and types with the on-screen keyboard
        phone = chromium.new_context(**PHONE)
        page = _sign_in(phone, base, alice.member.email)
        assert _launch_demo(page, base) == desktop.pk  # Launch again: the same, still running desktop
        if not page.locator("#qc-keybar").is_visible():
            page.locator('[data-testid="keyboard"]').tap()
        page.locator('[data-testid="osk"]').tap()
        phone_marker = f"qz{uuid.uuid4().hex[:12]}"
        page.keyboard.type(f"echo {phone_marker}", delay=40)
        page.locator('[data-testid="key-enter"]').tap()
        # Then that command ran in the guest too
        _wait_for_line(desktop, phone_marker)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "e2e-console-phone.png"))

        # When the desktop is shut down while its console is open
        request_action(desktop=Desktop.objects.get(pk=desktop.pk), kind=OperationKind.STOP, actor=alice.member)
        # Then the console says it is not running and offers to start it
        start_button = page.locator('[data-testid="start"]')
        start_button.wait_for(state="visible", timeout=STOP_TIMEOUT_MS)
        assert "stopped" in page.locator("#qc-overlay-text").inner_text()
        assert page.locator("#console-app").get_attribute("data-state") == "stopped"
        page.screenshot(path=str(ARTIFACTS / "e2e-console-stopped.png"))
        # When the person starts it from there, the console comes back by itself (with a new ticket)
        start_button.tap()
        page.wait_for_selector('#console-app[data-state="connected"]', timeout=LAUNCH_TIMEOUT_MS)
        wait_until(
            lambda: (
                (s := _guest_screen(desktop)) is not None and demo_image.PROMPT in s.text and phone_marker not in s.text
            ),
            GUEST_TIMEOUT_S,
        )
        page.locator('[data-testid="osk"]').tap()
        after_restart = f"qz{uuid.uuid4().hex[:12]}"
        page.keyboard.type(f"echo {after_restart}", delay=40)
        page.locator('[data-testid="key-enter"]').tap()
        _wait_for_line(desktop, after_restart)
        # And special keys reach the guest: Ctrl+Alt+Del from the Keys menu reboots it (its inittab says so)
        serial = Path(spec.serial_log_path(desktop))
        before = len(serial.read_text(errors="replace"))
        page.locator('[data-testid="keys"]').tap()
        page.locator('[data-testid="ctrl-alt-del"]').tap()
        wait_until(lambda: demo_image.POWEROFF_BANNER in serial.read_text(errors="replace")[before:], GUEST_TIMEOUT_S)
        wait_until(lambda: demo_image.READY_BANNER in serial.read_text(errors="replace")[before:], GUEST_TIMEOUT_S)
        page.wait_for_selector('#console-app[data-state="connected"]', timeout=CONNECT_TIMEOUT_MS)
        page.goto(f"{base}/")
        phone.close()

        # And every visit is a console session with bytes each way; the first one was recorded
        wait_until(lambda: not ConsoleSession.objects.filter(desktop=desktop, ended_at__isnull=True).exists(), 30)
        visits = list(ConsoleSession.objects.filter(desktop=desktop).order_by("started_at"))
        assert len(visits) == 3 and all(v.bytes_to_desktop > 0 and v.bytes_from_desktop > 0 for v in visits)
        assert visits[1].end_reason == "desktop_closed"
        recording = Recording.objects.get(session=visits[0])
        assert recording.ended_at is not None and recording.frames > 0

        # When a tenant admin replays that recording in the browser
        admin_context = chromium.new_context(viewport={"width": 1280, "height": 800})
        page = _sign_in(admin_context, base, alice.admin.email)
        page.goto(f"{base}/console/sessions/")
        page.locator(f'[data-testid="replay-{recording.pk}"]').click()
        page.wait_for_url(re.compile(rf".*/console/recordings/{recording.pk}/$"))
        page.select_option('[data-testid="replay-speed"]', "max")
        page.wait_for_selector('#replay-app[data-state="finished"]', timeout=60_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "e2e-replay.png"))
        replayed = _framebuffer(page, "window.quetzalReplay.rfb")
        admin_context.close()
        # Then it ends on the frame the person saw last
        assert replayed[:2] == live[:2]
        assert _different_pixels(replayed[2], live[2]) <= MAX_DIFFERENT_PIXELS
    except BaseException:
        _save_failure_artifacts()
        raise
    finally:
        _OPEN_PAGES.clear()
        if desktop is not None:
            from desktops.services.execution import remove_from_host

            remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)
        # Under Playwright the test body runs in a context of its own, so its database connection
        # is not the one pytest-django closes; left open, it would block dropping the test database.
        connections.close_all()
    print(f"end-to-end console test took {time.monotonic() - started:.1f}s")
