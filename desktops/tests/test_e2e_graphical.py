"""End to end on the graphical demo desktop: launch it in Chromium, wait for the real desktop, type into its terminal.

One boot of the X desktop serves the whole test (CPU is scarce under software emulation): the laptop-sized
window launches it and waits until the guest says it is ready (the console says "Ready" only then), types into
the terminal; a script looks at the same screen and clicks and types into the terminal through the automation API
while the person sees its banner; the person types through the clipboard panel's "Type it", copies text both ways
through the clipboard channel and hears a tone; then the desktop hibernates (its clipboard channel, which QEMU 7.2
cannot save, is unplugged for that) and a phone-sized window brings it back from memory, types with the on-screen
keyboard and copies out of it again. What was typed is proved to have reached the guest by its serial port (the
guest's `qz-say` prints there), and the desktop on screen by the framebuffer's pixels. Everything the test
made on the shared libvirtd (domain, disks, spare disks, network, image copies) is removed, and checked gone.
"""

from __future__ import annotations

import io
import random
import re
import time
import uuid
from pathlib import Path

import pytest
from django.db import connections
from PIL import Image

from desktops.choices import DesktopState, OperationKind, ReadySignal
from desktops.models import Desktop, DesktopTemplate, HomeDisk, LaunchTiming
from desktops.services import homes, spec
from desktops.services.requests import request_action
from desktops.tests.qemu_world import qemu_host, start_worker  # noqa: F401
from desktops.tests.test_e2e_browser import ARTIFACTS, PHONE, _framebuffer, _sign_in, asgi_server  # noqa: F401
from hosts import demo_graphical, demo_image
from tests.fixtures import api_client
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.qemu, pytest.mark.worker]

# The X desktop boots in ~20 s on an idle machine and in minutes on a busy one (software emulation).
BOOT_TIMEOUT_MS = 900_000
GUEST_TIMEOUT_S = 60
# Saving 1 GiB of guest memory to disk.
HIBERNATE_TIMEOUT_S = 300
# Where the guest's session puts its terminal (etc/quetzal/session: 80x24+60+60 on a 1280x800 screen).
TERMINAL_AT = (300, 200)
TONE_HZ = 880


@pytest.fixture
def private_network(monkeypatch, settings):
    """Tenant subnets no other run on this shared libvirtd uses (10.200/16 is the product's default)."""
    network_range = f"10.{random.randint(201, 250)}.0.0/16"
    settings.TENANT_NETWORK_RANGE = network_range
    monkeypatch.setenv("QUETZAL_TENANT_NETWORK_RANGE", network_range)  # the worker's (child_env copies it)


@pytest.fixture
def graphical_template(qemu_host):  # noqa: F811
    """The graphical demo, built once per recipe (cached) and copied to the host."""
    import os

    from django.core.management import call_command
    from django.db import connection

    from hosts.hypervisor import get_hypervisor
    from hosts.services import images

    # Its volumes on the host are named after the image id: not another database's id 1.
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('hosts_image', 'id'), %s)", [random.randint(10**5, 10**9)])
    call_command("build_demo_image", "--graphical", "--no-copy", stdout=open(os.devnull, "w"))  # noqa: SIM115
    template = DesktopTemplate.objects.get(name="Demo Linux desktop")
    images.copy_image_to_host(image=template.image, host=qemu_host)
    yield template
    hv = get_hypervisor(qemu_host.uri)
    for volume in images.volume_names(template.image):
        hv.volume_delete(qemu_host.storage_pool, volume)
    assert not any(hv.volume_exists(qemu_host.storage_pool, v) for v in images.volume_names(template.image))


def _remove_everything(tenant) -> None:
    """Every desktop the test made (even one whose launch never reached the console), then check it is gone."""
    from desktops.services.execution import remove_from_host
    from hosts.hypervisor import DomainNotFound, get_hypervisor
    from hosts.models import TenantNetwork

    made = list(Desktop.objects.filter(tenant=tenant).exclude(host=None).select_related("host"))
    for desktop in made:
        remove_from_host(desktop, release=True)
        Path(spec.serial_log_path(desktop)).unlink(missing_ok=True)
    for home in HomeDisk.objects.filter(tenant=tenant).select_related("host"):
        homes.delete_home_volume(home)
        # The host is this machine (qemu:///system), so its file is checked gone where it was.
        assert not (home.volume_path and Path(home.volume_path).exists())
    for desktop in made:
        hv = get_hypervisor(desktop.host.uri)
        with pytest.raises(DomainNotFound):
            hv.state(desktop.domain_name)
        assert not hv.volume_exists(desktop.host.storage_pool, spec.disk_volume_name(desktop))
        assert not hv.volume_exists(desktop.host.storage_pool, spec.seed_volume_name(desktop))
    assert not TenantNetwork.objects.filter(tenant=tenant).exists()


def _serial(desktop: Desktop) -> str:
    try:
        return Path(spec.serial_log_path(desktop)).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _said(desktop: Desktop, line: str) -> None:
    """Wait until the guest printed `line` (from qz-say or qz-paste) on its serial port."""
    wait_until(lambda: line in _serial(desktop).splitlines(), GUEST_TIMEOUT_S)


def _in_guest(desktop: Desktop, script: str) -> str:
    """Run a shell script in the guest through its agent, for a failure's explanation (never for a check)."""
    import base64

    from hosts.hypervisor import get_hypervisor

    hv = get_hypervisor(desktop.host.uri)
    try:
        pid = hv.agent_command(
            desktop.domain_name,
            {"execute": "guest-exec", "arguments": {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True}},
        )["pid"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = hv.agent_command(desktop.domain_name, {"execute": "guest-exec-status", "arguments": {"pid": pid}})
            if status.get("exited"):
                return base64.b64decode(status.get("out-data", "")).decode(errors="replace")
            time.sleep(0.5)
        return "(the guest's script did not finish)"
    except Exception as exc:  # only an explanation: say why there is none
        return f"(no answer from the guest agent: {exc})"


def _wait_for_panel_text(page, desktop: Desktop, text: str) -> None:
    """Wait until the console's clipboard panel shows text copied in the desktop (else say what the guest had)."""
    try:
        page.wait_for_function(
            "text => document.querySelector('[data-testid=clipboard-text]').value === text",
            arg=text,
            timeout=GUEST_TIMEOUT_S * 1000,
        )
    except Exception:
        state = _in_guest(
            desktop,
            "ls -l /dev/virtio-ports; systemctl status --no-pager spice-vdagentd 2>&1 | tail -n 15;"
            " pgrep -a spice; DISPLAY=:0 xclip -selection clipboard -o; echo; journalctl -b --no-pager | tail -n 40",
        )
        panel = page.evaluate("document.querySelector('[data-testid=clipboard-text]').value")
        raise AssertionError(f"the panel shows {panel!r}, not {text!r}; in the guest:\n{state}") from None


def _launch(page, name: str) -> int:
    card = page.locator(".template-card", has_text=name)
    card.locator("button.launch").click()
    page.wait_for_url(re.compile(r".*/desktops/\d+/console/$"), timeout=BOOT_TIMEOUT_MS)
    page.wait_for_selector('#console-app[data-state="connected"]', timeout=BOOT_TIMEOUT_MS)
    return int(re.search(r"/desktops/(\d+)/console/", page.url).group(1))


def _click_desktop(page, x: int, y: int) -> None:
    """Click at desktop pixel (x, y), wherever the scaled canvas sits in the window."""
    canvas = page.locator("#qc-screen canvas")
    box = canvas.bounding_box()
    width, height = page.evaluate("[window.quetzalConsole.rfb._fbWidth, window.quetzalConsole.rfb._fbHeight]")
    page.mouse.click(box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height)


def _dominant_hz(samples: list[float], rate: int) -> float:
    """The strongest frequency in a stretch of samples (a Hann-windowed FFT)."""
    import numpy

    values = numpy.asarray(samples, dtype=float)
    spectrum = numpy.abs(numpy.fft.rfft(values * numpy.hanning(len(values))))
    spectrum[0] = 0.0
    return float(numpy.fft.rfftfreq(len(values), 1 / rate)[int(numpy.argmax(spectrum))])


def _pixel(frame: tuple[int, int, bytes], x: int, y: int) -> tuple[int, int, int]:
    width, _, data = frame
    i = (y * width + x) * 4
    return data[i], data[i + 1], data[i + 2]


def test_it_launches_the_graphical_desktop_and_types_into_its_terminal(
    alice,
    private_network,
    graphical_template,
    qemu_host,  # noqa: F811
    start_worker,  # noqa: F811
    asgi_server,  # noqa: F811
    chromium,
):
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    base = asgi_server
    start_worker()
    desktop = None
    try:
        # When a member launches the "Demo Linux desktop" in a laptop-sized window
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = _sign_in(context, base, alice.member.email)
        desktop = Desktop.objects.get(pk=_launch(page, "Demo Linux desktop"))
        # Then the console says Ready only once the guest itself said so on its serial port
        assert demo_graphical.READY_LINE in _serial(desktop)
        assert page.locator('[data-testid="console-status"]').inner_text() == "Ready"
        timing = LaunchTiming.objects.get(desktop=desktop)
        assert timing.kind == "cold" and timing.signal == "serial" and timing.seconds > 0
        boot_s = demo_graphical.ready_seconds(_serial(desktop))
        # And its root filesystem grew from the image's size to its disk's (the template's 2 GiB)
        wait_until(lambda: demo_graphical.root_kib(_serial(desktop)) is not None, GUEST_TIMEOUT_S)
        assert demo_graphical.root_kib(_serial(desktop)) > demo_graphical.ROOT_SIZE_BYTES // 1024
        # And the person's home disk, hot-plugged once it booted, is mounted on /data, where the file manager
        # reaches it through the guest's own qemu-guest-agent while the desktop runs
        wait_until(lambda: f"{demo_image.HOME_BANNER} mounted" in _serial(desktop), GUEST_TIMEOUT_S)
        files = api_client(alice.member, alice.tenant)
        listing = wait_until(
            # A busy worker may answer 504 (no answer in time) first: ask again until the agent's answer arrives.
            lambda: (lambda r: r if r.status_code == 200 else None)(files.get("/api/v1/files/")),
            HIBERNATE_TIMEOUT_S,
            2,
        )
        assert listing.json()["via"] == "guest"
        # And the screen is the desktop: the terminal's white inside the dark-blue background
        page.wait_for_timeout(1500)
        frame = _framebuffer(page, "window.quetzalConsole.rfb")
        assert frame[:2] == (1280, 800)
        assert _pixel(frame, 20, 400) == (0x1F, 0x3A, 0x4D)  # the root window's colour
        assert min(_pixel(frame, *TERMINAL_AT)) > 200  # the terminal's background
        page.screenshot(path=str(ARTIFACTS / "e2e-graphical-desktop.png"))

        # When the person clicks into the terminal and types a command
        marker = f"qz{uuid.uuid4().hex[:12]}"
        _click_desktop(page, *TERMINAL_AT)
        page.keyboard.type(f"qz-say {marker}", delay=30)
        page.keyboard.press("Enter")
        # Then it ran in the guest
        _said(desktop, f"{demo_graphical.SAY_LINE} {marker}")

        # When a script looks at the screen through the automation API, then it sees the same desktop
        shot = files.get(f"/api/v1/desktops/{desktop.pk}/screenshot/")
        assert shot.status_code == 200 and shot["Content-Type"] == "image/png"
        screen = Image.open(io.BytesIO(shot.content)).convert("RGB")
        assert screen.size == (1280, 800)
        assert screen.getpixel((20, 400)) == (0x1F, 0x3A, 0x4D) and min(screen.getpixel(TERMINAL_AT)) > 200
        # When it clicks into the terminal (a pointer event at screen coordinates) and types a command
        scripted = f"qz{uuid.uuid4().hex[:12]}"
        actions = [
            {"type": "click", "x": TERMINAL_AT[0], "y": TERMINAL_AT[1]},
            {"type": "text", "text": f"qz-say {scripted}\n"},
        ]
        typed = files.post(f"/api/v1/desktops/{desktop.pk}/input/", {"actions": actions}, format="json")
        assert typed.status_code == 200, typed.content
        # Then it ran in the guest, and the person watching is told a script is driving their desktop
        _said(desktop, f"{demo_graphical.SAY_LINE} {scripted}")
        page.wait_for_selector('[data-testid="automation-banner"]:not([hidden])', timeout=GUEST_TIMEOUT_S * 1000)

        # When capitals and shifted symbols go through "Type it", then they arrive shifted
        shouted = f"QZ{uuid.uuid4().hex[:8].upper()}+{{!}}"
        page.locator('[data-testid="clipboard"]').click()
        page.fill('[data-testid="clipboard-text"]', f"qz-say '{shouted}'\n")
        page.locator('#qc-clipboard [data-cmd="clip-type"]').click()
        _said(desktop, f"{demo_graphical.SAY_LINE} {shouted}")

        # When text is copied inside the desktop, then it reaches the console's clipboard panel
        copied = f"fromdesk{uuid.uuid4().hex[:8]}"
        _click_desktop(page, *TERMINAL_AT)
        page.keyboard.type(f"qz-copy {copied}", delay=30)
        page.keyboard.press("Enter")
        _wait_for_panel_text(page, desktop, copied)
        # When text is sent from the panel to the desktop's clipboard, then the guest can paste it
        pasted = f"todesk{uuid.uuid4().hex[:8]}"
        page.fill('[data-testid="clipboard-text"]', pasted)
        page.locator('#qc-clipboard [data-cmd="clip-send"]').click()
        page.locator('[data-testid="clipboard"]').click()
        _click_desktop(page, *TERMINAL_AT)
        page.keyboard.type("qz-paste", delay=30)
        page.keyboard.press("Enter")
        _said(desktop, f"{demo_graphical.PASTE_LINE} {pasted}")
        page.screenshot(path=str(ARTIFACTS / "e2e-graphical-typed.png"))

        # When the guest plays an 880 Hz tone
        before = page.evaluate("[window.quetzalConsole.sound.samples, window.quetzalConsole.sound.bytes]")
        _click_desktop(page, *TERMINAL_AT)
        page.keyboard.type(f"qz-tone {TONE_HZ} 6", delay=30)
        page.keyboard.press("Enter")
        # Then the browser receives two seconds of sound, compressed (Chromium decodes Opus), whose dominant
        # frequency is the tone's
        page.wait_for_function(
            f"window.quetzalConsole.sound.samples > {before[0]} + {2 * 48_000}", timeout=GUEST_TIMEOUT_S * 1000
        )
        assert page.evaluate("window.quetzalConsole.sound.codec") == "opus"
        received = page.evaluate("window.quetzalConsole.sound.bytes") - before[1]
        decoded = page.evaluate("window.quetzalConsole.sound.samples") - before[0]
        assert received < decoded * 4 / 6  # well under the PCM's four bytes per stereo sample
        page.wait_for_timeout(1200)
        samples = page.evaluate("Array.from(window.quetzalConsole.sound.recent)")
        assert abs(_dominant_hz(samples, 48_000) - TONE_HZ) < 15
        page.goto(f"{base}/")
        context.close()

        # When the desktop hibernates (its memory saved to disk, as a pool or the idle policy would)
        request_action(desktop=desktop, kind=OperationKind.HIBERNATE, actor=alice.member)
        wait_until(lambda: Desktop.objects.get(pk=desktop.pk).state == DesktopState.HIBERNATED, HIBERNATE_TIMEOUT_S)

        # When the same person opens it from a phone, which brings it back from memory
        phone = chromium.new_context(**PHONE)
        phone.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = _sign_in(phone, base, alice.member.email)
        assert _launch(page, "Demo Linux desktop") == desktop.pk
        # Then it is ready at once, as it was saved (no new boot: its readiness line is not printed again)
        back = LaunchTiming.objects.filter(desktop=desktop).order_by("-requested_at").first()
        assert back.signal == ReadySignal.RESUMED and demo_graphical.READY_LINE not in _serial(desktop)
        # And types with the on-screen keyboard
        if not page.locator("#qc-keybar").is_visible():
            page.locator('[data-testid="keyboard"]').tap()
        _click_desktop(page, *TERMINAL_AT)
        page.locator('[data-testid="osk"]').tap()
        phone_marker = f"qz{uuid.uuid4().hex[:12]}"
        page.keyboard.type(f"qz-say {phone_marker}", delay=30)
        page.locator('[data-testid="key-enter"]').tap()
        # Then that ran in the guest too
        _said(desktop, f"{demo_graphical.SAY_LINE} {phone_marker}")
        # And the clipboard channel came back with it: text copied in the desktop reaches the phone's panel
        again = f"afterwake{uuid.uuid4().hex[:8]}"
        page.keyboard.type(f"qz-copy {again}", delay=30)
        page.locator('[data-testid="key-enter"]').tap()
        _wait_for_panel_text(page, desktop, again)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "e2e-graphical-phone.png"))
        page.goto(f"{base}/")
        phone.close()
        print(f"graphical desktop: ready at guest uptime {boot_s}s, launch-to-ready {timing.seconds:.1f}s")
    finally:
        try:
            _remove_everything(alice.tenant)
        finally:
            # Under Playwright the test body runs in a context of its own, so its database connection is not
            # the one pytest-django closes; left open, it would block dropping the test database.
            connections.close_all()
    print(f"graphical end-to-end test took {time.monotonic() - started:.1f}s")
