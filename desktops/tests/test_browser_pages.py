"""The portal, the manage pages and the operators' pages in Debian's Chromium, at desktop and phone sizes.

A real ASGI server (uvicorn, the production one, in a subprocess on the test database) serves the pages and the live
WebSocket; a real Celery worker process (one process, threads: the libvirt test driver keeps its VMs
per process) carries out launches. Screenshots go to test-artifacts/pages/.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from desktops.choices import DesktopState, OperationStatus
from desktops.console.models import ConsoleSession, Recording
from desktops.console.recordfile import RecordingWriter
from desktops.metrics import collection, live
from desktops.metrics.models import DesktopSample, HostSample
from desktops.models import Desktop, Operation, Pool
from desktops.tests.browser import sign_in
from desktops.tests.conftest import make_test_host
from desktops.tests.factories import DesktopFactory
from desktops.tests.page_audit import axe_violations, loose_wide_tables, menu_problems, no_sideways_scroll
from desktops.tests.page_world import populate
from hosts.choices import CopyState
from hosts.models import Host, ImageCopy
from tenants.models import AuditEvent, Tenant, User
from tenants.sso.models import IdentityProvider
from tenants.sso.tests.saml_idp import key_and_certificate
from tests.factories import PASSWORD
from tests.processes import ROOT, Child, child_env, require_shared_services, start_asgi_server, start_celery_worker

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts" / "pages"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
# The dark theme follows the system: the tour sees it as a browser set to dark would.
DARK = {**DESKTOP, "color_scheme": "dark"}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE, "dark": DARK}
SETTINGS_MODULE = "desktops.tests.browser_settings"


class Processes:
    """The server and worker processes of one test, sharing its database, queue and channel prefix."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.queue = f"pages-{uuid.uuid4().hex[:8]}"
        self.prefix = f"asgi-pages-{uuid.uuid4().hex[:8]}"
        self.env = child_env(
            DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
            QUETZAL_TEST_QUEUE=self.queue,
            QUETZAL_TEST_CHANNEL_PREFIX=self.prefix,
            QUETZAL_VAR_DIR=str(tmp_path / "var"),
        )
        self.running: list[Child] = []

    def server(self) -> str:
        server, base = start_asgi_server(env=self.env, log_path=self.tmp_path / "server.log")
        self.running.append(server)
        return base

    def worker(self) -> None:
        options = ["-P", "threads", "-c", "2", "-Q", self.queue, "-n", f"pages-{uuid.uuid4().hex[:6]}@%h"]
        self.running.append(start_celery_worker(env=self.env, log_path=self.tmp_path / "worker.log", options=options))

    def stop(self, *, failed: bool = False) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if failed:
            # What the worker did, as the database remembers it: a log at INFO does not name every task.
            (ARTIFACTS / "failed-rows.txt").write_text(rows_for_a_failure())
        for child in self.running:
            child.stop(15)
            shutil.copy(child.log_path, ARTIFACTS / child.log_path.name)


def rows_for_a_failure() -> str:
    lines = [
        f"operation {o.pk} desktop={o.desktop_id} {o.kind} {o.status} step={o.step!r} error={o.error!r} "
        f"worker={o.worker!r} queued={o.queued_at:%H:%M:%S.%f} started={o.started_at} finished={o.finished_at} "
        f"steps={o.steps}"
        for o in Operation.objects.order_by("pk")
    ]
    lines += [
        f"desktop {d.pk} {d.kind} {d.state} reason={d.status_reason!r} at={d.state_changed_at:%H:%M:%S.%f}"
        for d in Desktop.objects.order_by("pk")
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def processes(transactional_db, tmp_path, settings, request) -> Iterator[Processes]:
    require_shared_services("the server process")
    running = Processes(tmp_path)
    # This process publishes live readings: it must use the server's channel prefix.
    layers = json.loads(json.dumps(settings.CHANNEL_LAYERS))
    layers["default"]["CONFIG"]["prefix"] = running.prefix
    settings.CHANNEL_LAYERS = layers
    yield running
    running.stop(failed=getattr(request.node, "failed_call", False))


@pytest.fixture
def base(processes) -> str:
    return processes.server()


@pytest.fixture
def world(alice, image, tmp_path):
    """Alice's tenant with desktops, history and a pool, on a test-driver host that has the image."""
    host = make_test_host(tmp_path, name="kvm-test-01")
    ImageCopy.objects.create(
        image=image, host=host, state=CopyState.READY, pool="default", volume_name="base.qcow2", volume_path="/b"
    )
    created = populate(alice, image)
    created["host"] = host
    # The network pages' content: an address for one desktop and rules at each level.
    from desktops.models import FirewallRule
    from hosts.models import NetworkLease, TenantNetwork

    net = TenantNetwork.objects.create(
        tenant=alice.tenant, host=host, name="quetzal-pages", bridge="qzpages", subnet="10.200.0.0/24", subnet_index=0
    )
    NetworkLease.objects.create(network=net, desktop_id=created["mine"].pk, mac="52:54:00:12:34:56", ip="10.200.0.2")
    FirewallRule.objects.create(tenant=alice.tenant, action="deny", cidr="203.0.113.0/24", description="partner lab")
    FirewallRule.objects.create(
        tenant=alice.tenant, desktop=created["mine"], action="allow", cidr="0.0.0.0/0", protocol="tcp", port_start=443
    )
    # A SAML provider's page: what Quetzal publishes for the IdP (long URLs, copy buttons) and what it read.
    certificate = key_and_certificate(tmp_path)[1].read_text().split("-----")[2].replace("\n", "")
    created["saml"] = IdentityProvider.objects.create(
        tenant=alice.tenant,
        kind="saml",
        name="Acme Entra ID",
        saml_entity_id="https://sts.windows.net/6f1c0b5e-3a52-4d5c-9c57-2f0e8a4d8e11/",
        saml_sso_url="https://login.microsoftonline.com/6f1c0b5e-3a52-4d5c-9c57-2f0e8a4d8e11/saml2",
        saml_certificate=certificate,
    )
    return created


class Browser:
    """Signed-in pages at one viewport (one browser context per person), failing on any script error."""

    def __init__(self, chromium, base: str, viewport: str, expected: list[str] | None = None) -> None:
        self.chromium, self.base, self.viewport = chromium, base, viewport
        self.contexts: list = []
        self.errors: list[str] = []
        # Console messages a test expects (e.g. no VM behind the console), as substrings. One list for every
        # browser a test opens: what one viewport may log, the same test's other viewport may log too.
        self.expected: list[str] = [] if expected is None else expected

    def page(self):
        """A page in a fresh context (no one signed in)."""
        context = self.chromium.new_context(**VIEWPORTS[self.viewport])
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self._console(page, message))
        return page

    def _console(self, page, message) -> None:
        # A page that answers 403/404 on purpose logs the failed load; that is the test's intent, not an error.
        expected = ["Failed to load resource", *self.expected]
        if message.type == "error" and not any(text in message.text for text in expected):
            self.errors.append(f"{page.url}: console error: {message.text}")

    def sign_in(self, email: str):
        return sign_in(self.page(), self.base, email)

    def shot(self, page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}-{self.viewport}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self, *, failed: bool = False) -> None:
        for number, context in enumerate(self.contexts):
            if failed:
                # The screen the test gave up on says more than the locator's timeout.
                for index, page in enumerate(context.pages):
                    page.screenshot(path=str(ARTIFACTS / f"failed-{self.viewport}-{number}-{index}.png"))
            context.close()
        assert not self.errors, self.errors


@pytest.fixture
def browsers(chromium, base, request) -> Iterator[Callable[[str], Browser]]:
    opened: list[Browser] = []
    expected: list[str] = []

    def open_at(viewport: str) -> Browser:
        browser = Browser(chromium, base, viewport, expected)
        opened.append(browser)
        return browser

    yield open_at
    for browser in opened:
        browser.close(failed=getattr(request.node, "failed_call", False))


def fresh_heartbeat() -> None:
    """The placement filter wants hosts heard from within a minute; nothing beats in this test."""
    Host.objects.update(last_heartbeat_at=timezone.now())


# --- launching --------------------------------------------------------------------------------

_RECORD_STEPS = """() => {
  const note = () => {
    const panel = document.querySelector('.launch-panel:not([hidden])');
    if (!panel) return;
    const seen = JSON.parse(sessionStorage.getItem('steps') || '[]');
    const stages = [...panel.querySelectorAll('[data-step]')].map((li) => `${li.dataset.step}:${li.className}`);
    seen.push({ label: panel.querySelector('.launch-step').textContent, stages: stages.join(' ') });
    sessionStorage.setItem('steps', JSON.stringify(seen));
  };
  new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true,
    attributes: true, attributeFilter: ['class', 'hidden'] });
}"""


def test_it_launches_from_the_launcher_to_a_running_desktop_with_live_progress(alice, world, processes, browsers, base):
    fresh_heartbeat()
    template = world["windows"]
    # The member's Windows desktop is stopped: delete it so the launch makes a new one from scratch.
    Desktop.objects.filter(pk=world["stopped"].pk).update(state=DesktopState.DELETED)
    browser = browsers("desktop")
    # The test driver keeps VMs per process: the server's proxy never sees the worker's VM and answers "not
    # running" (4409), or "unavailable" (4503) when the row already says running but the server's driver has no VNC
    # port for it, whenever the console page gets that far before the test moves on. The launch is the point.
    browser.expected.extend(["(code: 4409)", "(code: 4503)"])
    page = browser.sign_in(alice.member.email)
    page.evaluate(_RECORD_STEPS)
    # When the member clicks Launch before any worker runs, the card says it waits, at the first stage
    page.click(f'[data-testid="launch-{template.pk}"]')
    status = page.locator(f'[data-testid="launch-step-{template.pk}"]')
    status.filter(has_text="Waiting for a worker").wait_for(timeout=15_000)
    assert (
        page.locator(f'[data-testid="launch-panel-{template.pk}"] [data-step=queued]').get_attribute("class")
        == "active"
    )
    browser.shot(page, "launch-queued")
    # Then a worker starts; the page follows the operation to the console without a reload
    processes.worker()
    page.wait_for_url(re.compile(r".*/desktops/\d+/console/$"), timeout=90_000)
    desktop = Desktop.objects.get(pk=int(re.search(r"/desktops/(\d+)/console/", page.url)[1]))
    assert desktop.state == DesktopState.RUNNING and desktop.template_id == template.pk
    operation = Operation.objects.get(desktop=desktop)
    assert operation.status == OperationStatus.SUCCEEDED
    assert [s["step"] for s in operation.steps][:2] == ["placing", "cloning disk"]
    # And the page showed the progress as it came: waiting first, every stage done at the end
    steps = page.evaluate("JSON.parse(sessionStorage.getItem('steps') || '[]')")
    labels = [s["label"] for s in steps]
    assert labels[0] == "Asking for a desktop…" and "Waiting for a worker…" in labels
    assert labels[-1] == "Ready: opening your desktop…"
    assert steps[-1]["stages"] == "queued:done placing:done cloning:done booting:done ready:done"
    browser.shot(page, "console-after-launch")
    # Back on the portal, the new desktop is running with its actions
    page.goto(f"{base}/")
    page.locator(f'[data-testid="state-{desktop.pk}"]', has_text="Running").wait_for()
    assert page.locator(f'[data-testid="open-{desktop.pk}"]').is_visible()
    browser.shot(page, "portal-running")
    # Stopping asks first: cancelled, nothing happens; confirmed, the card follows the stop
    stop = page.locator(f'[data-testid="stop-{desktop.pk}"]')
    stop.click()
    dialog = page.locator('[data-testid="confirm-dialog"]')
    dialog.wait_for()
    assert "unsaved work" in dialog.text_content()
    browser.shot(page, "confirm-stop")
    page.click('[data-testid="confirm-cancel"]')
    assert not Operation.objects.filter(desktop=desktop, kind="stop").exists()
    stop.click()
    page.click('[data-testid="confirm-ok"]')
    page.locator(f'[data-testid="state-{desktop.pk}"]', has_text="Stopped").wait_for(timeout=60_000)
    assert page.locator(f'[data-testid="reason-{desktop.pk}"]').text_content() == "Stopped on request"
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.STOPPED

    # At phone size, launching a template whose desktop already runs opens it at once
    phone = browsers("phone")
    small = phone.sign_in(alice.member.email)
    small.click(f'[data-testid="launch-{world["ubuntu"].pk}"]')
    small.wait_for_url(re.compile(rf".*/desktops/{world['mine'].pk}/console/$"), timeout=30_000)
    phone.shot(small, "console-from-phone")


# --- live numbers -----------------------------------------------------------------------------


def publish_readings(host: Host, desktop: Desktop, *, cpu: float, memory_mib: float) -> None:
    """Push one collection's readings through the channel layer, as the metrics collector does."""
    now = timezone.now()
    sample = DesktopSample(
        desktop_id=desktop.pk,
        tenant_id=desktop.tenant_id,
        host=host,
        at=now,
        cpu_percent=cpu,
        memory_used_mib=memory_mib,
        memory_total_mib=desktop.memory_mib,
        vcpus=desktop.vcpus,
    )
    host_sample = HostSample(
        host=host,
        at=now,
        desktops=1,
        cpu_percent=cpu / 8,
        cpu_cores=cpu * desktop.vcpus / 100,
        memory_used_mib=memory_mib,
        cpus=host.cpus,
        memory_mib=host.memory_mib,
        vcpu_capacity=host.vcpu_capacity,
        memory_capacity_mib=host.memory_capacity_mib,
        # The whole host is busier than its desktops: other work runs on it too.
        node_cpu_percent=min(100.0, cpu + 20),
        node_memory_used_mib=host.memory_mib * 0.5,
        node_disk_total_bytes=400 * 2**30,
        node_disk_used_bytes=100 * 2**30,
    )
    pushes = collection.sample_pushes(host, host_sample, [sample])
    # Playwright keeps an event loop on this thread, and publishing wants one of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(live.publish, pushes).result() == len(pushes)


def until_shown(page, selector: str, text: str, publish: Callable[[], None], timeout_s: float = 20) -> None:
    """Publish until the page shows `text` at `selector` (pushes before the socket subscribed are lost)."""
    deadline = time.monotonic() + timeout_s
    locator = page.locator(selector)
    while time.monotonic() < deadline:
        publish()
        try:
            locator.filter(has_text=text).wait_for(timeout=1000)
            return
        except Exception:  # not yet: publish again
            continue
    pytest.fail(f"{selector} never showed {text!r}; it shows {locator.text_content()!r}")


def test_it_shows_live_numbers_that_change_without_a_reload(alice, world, browsers, base):
    mine, host = world["mine"], world["host"]
    Desktop.objects.filter(pk=mine.pk).update(host=host)
    # The member's card: CPU and RAM sparkline values follow the readings
    browser = browsers("desktop")
    page = browser.sign_in(alice.member.email)
    page.evaluate("window.__sameDocument = true")
    spark = f'[data-testid="spark-{mine.pk}"]'
    until_shown(page, f"{spark} [data-value=cpu]", "12%", lambda: publish_readings(host, mine, cpu=12, memory_mib=1024))
    assert page.locator(f"{spark} [data-value=memory]").text_content() == "25%"
    until_shown(page, f"{spark} [data-value=cpu]", "57%", lambda: publish_readings(host, mine, cpu=57, memory_mib=2048))
    assert page.locator(f"{spark} [data-value=memory]").text_content() == "50%"
    assert page.evaluate("window.__sameDocument === true")
    browser.shot(page, "portal-live")

    # The admin's dashboard at phone size: live CPU, and the running count after a desktop starts
    phone = browsers("phone")
    dash = phone.sign_in(alice.admin.email)
    dash.goto(f"{base}/manage/")
    dash.evaluate("window.__sameDocument = true")
    until_shown(dash, '[data-testid="live-cpu"]', "0.8", lambda: publish_readings(host, mine, cpu=40, memory_mib=2048))
    assert dash.locator('[data-testid="running"]').text_content() == "3"
    DesktopFactory(world=alice, template=world["ubuntu"], lived_in=True, user=alice.owner)
    dash.locator('[data-testid="running"]', has_text="4").wait_for(timeout=15_000)
    assert dash.evaluate("window.__sameDocument === true")
    phone.shot(dash, "dashboard-live")

    # The operators' host dashboard: the chart switches to live host CPU
    fresh_heartbeat()
    operator = User.objects.create_superuser(email="ops@example.test", password=PASSWORD)
    ops_browser = browsers("desktop")
    ops = ops_browser.page()
    ops.goto(f"{base}/admin/login/?next=/admin/hosts/host/dashboard/")
    ops.fill("input[name=username]", operator.email)
    ops.fill("input[name=password]", PASSWORD)
    ops.locator("input[type=submit]").click()
    ops.wait_for_url(re.compile(r".*/admin/hosts/host/dashboard/$"))
    until_shown(ops, "#chart-title", "live", lambda: publish_readings(host, mine, cpu=70, memory_mib=2048))
    # The row shows the host's own use from libvirt's node figures: CPU, memory and disk
    use = ops.locator(f'[data-testid="host-use-{host.pk}"]')
    until_shown(
        ops, f'[data-testid="host-use-{host.pk}"]', "90%", lambda: publish_readings(host, mine, cpu=70, memory_mib=2048)
    )
    assert "RAM" in use.text_content() and "50%" in use.text_content() and "100 of 400 GiB" in use.text_content()
    assert ops.locator('[data-testid="hosts-up"]').text_content() == "1"
    ops_browser.shot(ops, "host-dashboard-live")


# --- the launcher stays in step -------------------------------------------------------------------


def test_it_keeps_the_launcher_in_step_when_desktops_stop_and_go(alice, world, browsers, base):
    mine, stopped, ubuntu = world["mine"], world["stopped"], world["ubuntu"]
    browser = browsers("phone")
    page = browser.sign_in(alice.member.email)
    page.evaluate("window.__sameDocument = true")
    count = page.locator("[data-running-count]")
    assert count.text_content() == "1"
    assert page.locator(f'[data-testid="launch-{ubuntu.pk}"]').text_content().strip() == "Open"
    # When the running desktop stops elsewhere (the idle policy, another tab), the page follows without a reload
    Desktop.objects.filter(pk=mine.pk).update(state=DesktopState.STOPPED, status_reason="Stopped on request")
    page.locator(f'[data-testid="state-{mine.pk}"]', has_text="Stopped").wait_for(timeout=30_000)
    assert count.text_content() == "0"
    assert page.locator(f'[data-testid="launch-{ubuntu.pk}"]').text_content().strip() == "Resume"
    assert not page.locator(f'[data-testid="open-{mine.pk}"]').count()
    # When both desktops are deleted, their cards go, and so does the heading above them
    Desktop.objects.filter(pk__in=[mine.pk, stopped.pk]).update(state=DesktopState.DELETED, deleted_at=timezone.now())
    page.locator('[data-testid="my-desktops-empty"]').wait_for(state="visible", timeout=30_000)
    assert not page.locator("#mine-title").is_visible()
    assert page.locator(f'[data-testid="launch-{ubuntu.pk}"]').text_content().strip() == "Launch"
    assert page.evaluate("window.__sameDocument === true")
    browser.shot(page, "launcher-after-delete")


# --- the console on a phone ------------------------------------------------------------------------

_OFF_SCREEN = """(selector) => [...document.querySelectorAll(selector)]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => {
    const b = el.getBoundingClientRect();
    return b.left < 0 || b.right > innerWidth || b.bottom > innerHeight;
  })
  .map((el) => el.textContent.trim() || el.getAttribute('aria-label'))"""


def test_it_fits_the_console_controls_on_a_phone(alice, world, chromium, base):
    # The page only: no VM answers here, so the console shows its overlay while the layout is checked.
    mine = world["mine"]
    Desktop.objects.filter(pk=mine.pk).update(name="Ubuntu for the quarterly report")
    context = chromium.new_context(**PHONE)
    page = sign_in(context.new_page(), base, alice.member.email)
    page.goto(f"{base}/desktops/{mine.pk}/console/")
    page.evaluate("document.getElementById('console-app').dataset.keybar = 'on'")
    # The key bar: every key on screen, Enter and Backspace big enough for a thumb
    assert page.evaluate(_OFF_SCREEN, "#qc-keybar button") == []
    for key in ("Enter", "Backspace"):
        box = page.locator(f'#qc-keybar [data-key="{key}"]').bounding_box()
        assert box["width"] >= 40 and box["height"] >= 40, (key, box)
    # The desktop's name keeps more than a letter or two
    assert page.locator(".qc-name").bounding_box()["width"] >= 80
    # The Keys menu opens inside the screen
    page.click('[data-testid="keys"]')
    assert page.evaluate(_OFF_SCREEN, ".qc-menu-items > button") == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-keys-phone.png"))
    page.click('[data-testid="keys"]')
    page.screenshot(path=str(ARTIFACTS / "console-keybar-phone.png"))
    context.close()


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_it_warns_in_the_console_before_the_idle_stop_and_keeps_it_running(viewport, alice, world, browsers, base):
    # Given a 30-minute idle policy and a desktop whose last input was 28 minutes ago
    Tenant.objects.filter(pk=alice.tenant.pk).update(idle_timeout_minutes=30, idle_action="stop")
    mine = world["mine"]
    quiet_since = timezone.now() - timedelta(minutes=28)
    Desktop.objects.filter(pk=mine.pk).update(running_since=quiet_since, last_activity_at=quiet_since, consoles_open=0)
    browser = browsers(viewport)
    # No VM answers behind this test host: noVNC's "unavailable" (4503) is expected, any other error is not.
    browser.expected.append("(code: 4503)")
    page = browser.sign_in(alice.member.email)
    # When the person has the console open, the banner says what happens and when, inside the window
    page.goto(f"{base}/desktops/{mine.pk}/console/")
    banner = page.get_by_test_id("console-idle-warning")
    banner.wait_for(state="visible", timeout=15_000)
    said = banner.inner_text()
    assert re.search(r"it stops in (1 min|under a minute) \(\d\d?:\d\d( [AP]M)?\)", said), said
    box, width = banner.bounding_box(), page.viewport_size["width"]
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert axe_violations(page) == []
    browser.shot(page, "console-idle-warning")
    # Then "Keep it running" puts the stop off by the whole idle time, hides the banner and says so in the log
    page.get_by_test_id("console-keep-running").click()
    banner.wait_for(state="hidden", timeout=10_000)
    mine.refresh_from_db()
    assert mine.last_activity_at > quiet_since + timedelta(minutes=27)
    (event,) = AuditEvent.objects.filter(action="desktop.keep_running", target_id=str(mine.pk))
    assert event.actor == alice.member and event.tenant == alice.tenant
    # And a reload does not bring it back: the deadline is 30 minutes away again
    page.reload()
    page.wait_for_timeout(1_500)
    assert banner.is_hidden()


def test_it_tells_the_connected_person_of_the_ramp_down_stop_live_and_defers_it(alice, world, browsers, base):
    from desktops.choices import DesktopKind
    from desktops.services import autoscale, ramp_down, scaling

    # Given a pooled desktop the member holds and has open, in a pool whose plan stops held desktops after notice
    Tenant.objects.filter(pk=alice.tenant.pk).update(time_zone="Europe/Berlin", idle_timeout_minutes=0)
    mine, pool = world["mine"], world["pool"]
    Desktop.objects.filter(pk=mine.pk).update(pool=pool, kind=DesktopKind.POOLED, consoles_open=1)
    values = {"stop_in_use": True, "notice_minutes": 15, "defer_minutes": 10}
    autoscale.save_plan(pool=pool, actor=alice.admin, values=values)
    browser = browsers("desktop")
    browser.expected.append("(code: 4503)")  # no VM answers behind this test host
    page = browser.sign_in(alice.member.email)
    page.goto(f"{base}/desktops/{mine.pk}/console/")
    banner = page.get_by_test_id("console-stop-notice")
    # Its live socket is open and has read that nothing is announced yet
    page.wait_for_function("() => new Promise((r) => window.quetzalLive.onStatus((s) => s === 'open' && r(true)))")
    page.wait_for_timeout(1_000)
    assert banner.is_hidden()
    # When ramp-down decides, the notice appears without a reload, on the tenant's clock
    now = timezone.now()

    def decide() -> None:
        try:
            ramp_down.apply(Pool.objects.get(pk=pool.pk), phase=scaling.RAMP_DOWN, now=now)
        finally:
            connection.close()

    # Playwright keeps an event loop on this thread, and the push after the decision wants one of its own.
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(decide).result()
    banner.wait_for(state="visible", timeout=10_000)
    due = scaling.local_moment(now + timedelta(minutes=15), "Europe/Berlin").strftime("%H:%M")
    assert page.get_by_test_id("console-stop-clock").inner_text() == due
    assert "save your work" in banner.inner_text().lower()
    browser.shot(page, "console-stop-notice")
    # Then "Keep working" puts it off by the plan's ten minutes
    page.get_by_test_id("console-defer-stop").click()
    later = scaling.local_moment(now + timedelta(minutes=25), "Europe/Berlin").strftime("%H:%M")
    page.get_by_test_id("console-stop-clock").filter(has_text=later).wait_for(timeout=10_000)
    assert Desktop.objects.get(pk=mine.pk).stop_notice.deferrals == 1


# --- policies ----------------------------------------------------------------------------------


def test_it_applies_an_admin_policy_change_to_the_next_launch(alice, world, browsers, base):
    # Given the member runs one desktop and the policy allows two
    assert Tenant.objects.get(pk=alice.tenant.pk).max_running_per_user == 2
    # When an admin, on a phone, sets the running limit to one
    phone = browsers("phone")
    admin = phone.sign_in(alice.admin.email)
    admin.goto(f"{base}/manage/policies/")
    admin.fill("input[name=max_running_per_user]", "1")
    admin.click('[data-testid="save-policies"]')
    admin.locator(".message", has_text="Policies saved.").wait_for()
    phone.shot(admin, "policies-saved")
    assert Tenant.objects.get(pk=alice.tenant.pk).max_running_per_user == 1
    # Then the member's next launch of another template is refused with the limit, on the card
    template = world["windows"]
    Desktop.objects.filter(pk=world["stopped"].pk).update(state=DesktopState.DELETED)
    browser = browsers("desktop")
    page = browser.sign_in(alice.member.email)
    page.click(f'[data-testid="launch-{template.pk}"]')
    error = page.locator(f'[data-testid="launch-error-{template.pk}"]')
    error.wait_for()
    assert error.text_content() == "You may run 1 desktop(s) at once; stop one first."
    assert not Desktop.objects.filter(template=template).exclude(state=DesktopState.DELETED).exists()
    browser.shot(page, "launch-refused-by-policy")


# --- the scaling plan ---------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_it_edits_a_scaling_plan_and_charts_it_at_desktop_and_phone_size(viewport, alice, world, browsers, base):
    from desktops.models import ScalingPlan

    pool = world["pool"]
    browser = browsers(viewport)
    page = browser.sign_in(alice.admin.email)
    page.goto(f"{base}/manage/pools/{pool.pk}/scaling/")
    # The day chart spans the panel at either width, and nothing scrolls sideways
    width = page.viewport_size["width"]
    chart = page.locator('[data-testid="day-chart"] svg').bounding_box()
    assert chart["width"] > width * 0.6 and chart["height"] >= 150
    assert no_sideways_scroll(page)
    # When the admin sets the peak, turns prediction on and saves
    page.fill("input[name=peak_minimum]", "3")
    page.fill("input[name=peak_start]", "09:00")
    page.locator("input[name=prediction_enabled]").check()
    page.locator('[data-testid="plan-form"] button[type=submit]').click()
    page.wait_for_url(f"{base}/manage/pools/{pool.pk}/scaling/")
    # Then the plan is stored, and last week's demand is charted beside today's plan
    plan = ScalingPlan.objects.get(pool=pool)
    assert plan.peak_minimum == 3 and plan.prediction_enabled and plan.peak_start.hour == 9
    assert page.locator('[data-testid="week-chart"] svg').is_visible()
    bars = page.locator('[data-testid="day-chart"] rect')
    assert bars.count() == 96
    assert no_sideways_scroll(page)
    assert not axe_violations(page)
    browser.shot(page, "pool-scaling-saved")


# --- every page, both sizes ---------------------------------------------------------------------


def _pages(world) -> list[tuple[str, str, str, int]]:
    """(who, name, path, status) for every page of the portal, the manage pages and the operators' admin."""
    mine, pool, cad, host = world["mine"], world["pool"], world["cad"], world["host"]
    return [
        ("visitor", "sign-in", "/accounts/login/", 200),
        ("visitor", "password-reset", "/accounts/password/reset/", 200),
        ("visitor", "help", "/help/", 200),
        ("admin", "help-admins", "/help/admins/", 200),
        ("operator", "help-operators", "/help/operators/", 200),
        ("member", "portal", "/", 200),
        ("member", "desktop", f"/desktops/{mine.pk}/", 200),
        ("member", "settings", "/settings/", 200),
        ("member", "security", "/settings/security/", 200),
        ("member", "tokens", "/settings/tokens/", 200),
        ("member", "password", "/accounts/password/change/", 200),
        ("member", "not-found", "/no-such-page/", 404),
        ("member", "forbidden", "/manage/", 403),
        ("admin", "dashboard", "/manage/", 200),
        ("admin", "desktops", "/manage/desktops/", 200),
        ("admin", "pools", "/manage/pools/", 200),
        ("admin", "pool", f"/manage/pools/{pool.pk}/", 200),
        ("admin", "pool-scaling", f"/manage/pools/{pool.pk}/scaling/", 200),
        ("admin", "templates", "/manage/templates/", 200),
        ("admin", "template-new", "/manage/templates/new/", 200),
        ("admin", "template", f"/manage/templates/{cad.pk}/", 200),
        ("admin", "network", "/manage/network/", 200),
        ("admin", "template-firewall", f"/manage/templates/{cad.pk}/firewall/", 200),
        ("admin", "desktop-firewall", f"/manage/desktops/{mine.pk}/firewall/", 200),
        ("admin", "members", "/manage/members/", 200),
        ("admin", "policies", "/manage/policies/", 200),
        ("admin", "sso", "/manage/sign-in/", 200),
        ("admin", "sso-saml", f"/manage/sign-in/{world['saml'].pk}/", 200),
        ("admin", "provisioning", "/manage/provisioning/", 200),
        ("admin", "new-members", "/manage/new-members/", 200),
        ("admin", "audit", "/manage/audit/", 200),
        ("admin", "console-sessions", "/console/sessions/", 200),
        ("admin", "billing-off", "/manage/billing/", 200),
        ("operator", "ops-index", "/admin/", 200),
        ("operator", "ops-host-dashboard", "/admin/hosts/host/dashboard/", 200),
        ("operator", "ops-hosts", "/admin/hosts/host/", 200),
        ("operator", "ops-desktops", "/admin/desktops/desktop/", 200),
        ("operator", "ops-tenants", "/admin/tenants/tenant/", 200),
        ("operator", "ops-templates", "/admin/desktops/desktoptemplate/", 200),
        ("operator", "ops-images", "/admin/hosts/image/", 200),
        ("operator", "ops-email-domains", "/admin/sso/emaildomain/", 200),
        ("operator", "ops-host", f"/admin/hosts/host/{host.pk}/change/", 200),
        ("operator", "ops-image", f"/admin/hosts/image/{cad.image_id}/change/", 200),
        ("operator", "ops-template", f"/admin/desktops/desktoptemplate/{cad.pk}/change/", 200),
        ("operator", "ops-tenant", f"/admin/tenants/tenant/{mine.tenant_id}/change/", 200),
    ]


@pytest.mark.parametrize("viewport", ["desktop", "phone", "dark"])
def test_it_renders_every_page_readable_on_screen_and_accessible(viewport, alice, world, browsers, base):
    User.objects.filter(pk=alice.owner.pk).update(is_staff=True, is_superuser=True)
    browser = browsers(viewport)
    people = {"member": alice.member, "admin": alice.admin, "operator": alice.owner}
    signed_in = {who: browser.sign_in(person.email) for who, person in people.items()}
    signed_in["visitor"] = browser.page()
    problems: list[str] = []
    for who, name, path, status in _pages(world):
        if viewport == "dark" and name.startswith("ops-") and name != "ops-host-dashboard":
            continue  # Django's admin has its own dark theme; the tour holds Quetzal's pages to it
        page = signed_in[who]
        response = page.goto(f"{base}{path}")
        if response.status != status:
            problems.append(f"{name}: HTTP {response.status}, wanted {status}")
            continue
        page.wait_for_load_state("networkidle")
        # The operators' admin too: its wide change lists scroll inside their own box, the page does not.
        if not no_sideways_scroll(page):
            problems.append(f"{name}: scrolls sideways at {viewport} size")
        loose = loose_wide_tables(page)
        problems += [f"{name}: table {table} is wider than the screen, outside a scrolling box" for table in loose]
        problems += [f"{name}: {problem}" for problem in menu_problems(page)]
        # Django's own admin pages are its design: the tour holds Quetzal's pages to axe, the admin to menus.
        if not name.startswith("ops-") or name == "ops-host-dashboard":
            problems += [f"{name}: {violation}" for violation in axe_violations(page)]
        browser.shot(page, name)
    assert not problems, "\n".join(problems)


def test_it_says_when_the_console_cannot_load_and_retries(alice, world, browsers, base):
    # Given the bundled noVNC module cannot be fetched (a proxy, a network hiccup)
    browser = browsers("desktop")
    # Once its code runs, the console finds no VM behind this test host: noVNC's "unavailable" (4503) is expected.
    browser.expected.append("(code: 4503)")
    page = browser.sign_in(alice.member.email)
    page.route("**/vendor/novnc.min.js*", lambda route: route.abort())
    page.goto(f"{base}/desktops/{world['mine'].pk}/console/")
    # Then the console says so and offers a retry, instead of "Connecting…" for ever
    page.locator('[data-testid="retry-load"]').wait_for(state="visible", timeout=30_000)
    assert page.locator("#qc-overlay-title").inner_text() == "Console failed to load"
    assert page.locator("#console-app").get_attribute("data-state") == "refused"
    browser.shot(page, "console-failed-to-load")
    # When the network is back and the person retries, the console's code runs
    page.unroute("**/vendor/novnc.min.js*")
    page.locator('[data-testid="retry-load"]').click()
    page.wait_for_function("() => window.quetzalConsole !== undefined", timeout=30_000)
    assert page.locator('[data-testid="retry-load"]').is_hidden()
    # The aborted request is a console error the browser logs, not a page error: nothing else failed


# --- replaying a console recording ---------------------------------------------------------------

REPLAY_SIZE = (64, 48)
# The screen's colour from each moment on (ms): a screen that changes every two seconds, for twelve.
REPLAY_COLOURS = {0: (200, 30, 30), 2000: (30, 200, 30), 4000: (30, 30, 200), 6000: (200, 200, 30),
                  8000: (30, 200, 200), 10000: (200, 30, 200), 12000: (240, 240, 240)}  # fmt: skip


def _rfb_stream_start() -> bytes:
    """What a VNC server says before its first screen: version, no security, the screen's size and name."""
    width, height = REPLAY_SIZE
    pixel_format = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
    name = b"replay"
    return (
        b"RFB 003.008\n"
        + b"\x01\x01"
        + b"\x00\x00\x00\x00"
        + struct.pack(">HH", width, height)
        + pixel_format
        + (struct.pack(">I", len(name)) + name)
    )


def _rfb_screen(colour: tuple[int, int, int]) -> bytes:
    """One whole-screen update in raw encoding, in the pixel format noVNC asks for (red in the lowest byte)."""
    width, height = REPLAY_SIZE
    pixels = bytes((*colour, 0)) * (width * height)
    return b"\x00\x00" + struct.pack(">H", 1) + struct.pack(">HHHHi", 0, 0, width, height, 0) + pixels


def _write_recording(path: Path) -> None:
    """A recording file written by the proxy's own writer, its clock set to each frame's moment."""
    now = [0.0]
    writer = RecordingWriter(path, clock=lambda: now[0])

    async def write() -> None:
        await writer.open()
        writer.append(_rfb_stream_start())
        for at, colour in REPLAY_COLOURS.items():
            now[0] = at / 1000
            writer.append(_rfb_screen(colour))
        await writer.close()

    # Playwright's sync API keeps an event loop running on this thread: the writer gets a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(write())).result()


_PIXEL = "() => { const d = window.quetzalReplay.rfb.getImageData().data; return [d[0], d[1], d[2]]; }"


def _seek(page, ms: int) -> None:
    """Drag the seek bar to a moment: the range input's value, then the change a release fires."""
    page.eval_on_selector(
        '[data-testid="replay-seek"]',
        "(bar, ms) => { bar.value = ms; for (const kind of ['input', 'change']) bar.dispatchEvent(new Event(kind)); }",
        ms,
    )


def _shows(page, colour: tuple[int, int, int]) -> None:
    page.wait_for_function(f"() => ({_PIXEL})().join() === '{','.join(map(str, colour))}'", timeout=15_000)


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_it_replays_a_recording_with_a_seek_bar_speeds_and_a_timeline(viewport, alice, world, browsers, base, tmp_path):
    # Given a recording of a session whose screen changed colour every two seconds for twelve
    desktop = world["mine"]
    session = ConsoleSession.objects.create(tenant=alice.tenant, desktop=desktop, user=alice.member)
    relative = f"{alice.tenant.pk}/{desktop.pk}/{session.pk}-replay.qzrec"
    _write_recording(tmp_path / "var" / "recordings" / relative)
    recording = Recording.objects.create(
        tenant=alice.tenant, desktop=desktop, user=alice.member, session=session, path=relative,
        frames=len(REPLAY_COLOURS) + 1, duration_ms=12000,
    )  # fmt: skip
    browser = browsers(viewport)
    page = browser.sign_in(alice.admin.email)
    # When a tenant admin opens its replay
    page.goto(f"{base}/console/recordings/{recording.pk}/")
    page.wait_for_selector('#replay-app[data-state="playing"]')
    # Then the timeline marks each moment the screen changed, in order along the bar
    page.wait_for_function("() => document.querySelectorAll('#replay-timeline i').length === 7")
    marks = page.eval_on_selector_all("#replay-timeline i", "(marks) => marks.map((m) => Number(m.dataset.at))")
    assert marks == sorted(marks) and marks[0] == 0 and marks[-1] > 11_000
    speeds = page.eval_on_selector_all('[data-testid="replay-speed"] option', "(all) => all.map((o) => o.value)")
    assert speeds == ["0.5", "1", "2", "4", "16", "max"]
    # When they pause and seek to the middle, the screen and the position label are those of six seconds in
    page.locator('[data-testid="replay-pause"]').click()
    _seek(page, 6000)
    _shows(page, REPLAY_COLOURS[6000])
    assert page.locator('[data-testid="replay-clock"]').inner_text() == "0:06 / 0:12"
    assert page.locator('[data-testid="replay-seek"]').input_value() == "6000"
    # When they seek back, the replay starts over and catches up at once: the screen of 2.5 s, still paused
    _seek(page, 2500)
    _shows(page, REPLAY_COLOURS[2000])
    assert page.locator('[data-testid="replay-clock"]').inner_text() == "0:02 / 0:12"
    assert page.locator("#replay-app").get_attribute("data-state") == "paused"
    assert no_sideways_scroll(page)
    # The page itself cannot scroll (the player fills the window): every control must be inside it
    outside = page.eval_on_selector_all(
        "#replay-app header > *, #replay-app footer > *",
        "(all) => all.filter((c) => { const b = c.getBoundingClientRect(); return b.left < 0 || b.right > innerWidth })"
        "  .map((c) => c.textContent.trim())",
    )
    assert not outside, outside
    browser.shot(page, "replay-seeked")
    # When they pick four times the pace and play on, it runs to the end at that pace
    page.select_option('[data-testid="replay-speed"]', "4")
    assert page.evaluate("window.quetzalReplay.speed") == 4
    page.locator('[data-testid="replay-pause"]').click()
    page.wait_for_selector('#replay-app[data-state="finished"]', timeout=30_000)
    _shows(page, REPLAY_COLOURS[12000])
    assert page.locator('[data-testid="replay-clock"]').inner_text() == "0:12 / 0:12"
    # And seeking back from the end plays again from there
    _seek(page, 9000)
    _shows(page, REPLAY_COLOURS[8000])
    assert page.locator("#replay-app").get_attribute("data-state") == "playing"
    assert not axe_violations(page)
    browser.shot(page, "replay")
