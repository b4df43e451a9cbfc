"""Honest readiness: a desktop is ready when its guest says so; launches record their time to ready."""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta

import pytest
from django.utils import timezone

from desktops.choices import DesktopKind, DesktopState, LaunchKind, ReadySignal
from desktops.models import Desktop, LaunchTiming
from desktops.services import launch, readiness
from desktops.services.spec import serial_log_path
from desktops.state import transition
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory, PoolFactory
from hosts.hypervisor.base import Screenshot
from hosts.tests.factories import HostFactory, ImageFactory
from tests.fixtures import api_client

pytestmark = pytest.mark.django_db


def png(width: int, height: int, pixel) -> bytes:
    """A real PNG (RGB, no filter) whose pixel colour comes from pixel(x, y)."""
    rows = b"".join(b"\0" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


BLACK = png(16, 8, lambda x, y: (0, 0, 0))
DESKTOP = png(16, 8, lambda x, y: (x * 15, y * 30, 100))
OTHER = png(16, 8, lambda x, y: (y * 30, x * 15, 10))


class Screen:
    """Stands in for a host (no guest to look at here): answers screenshots and agent pings as told."""

    def __init__(self, shots=(), agent=False) -> None:
        self.shots = list(shots)
        self.agent = agent

    def agent_ping(self, name: str, timeout_s: int = 1) -> bool:
        return self.agent

    def screenshot(self, name: str) -> Screenshot:
        data = self.shots.pop(0) if len(self.shots) > 1 else self.shots[0]
        return Screenshot(data=data, mime="image/png")


@pytest.fixture
def serial_dir(settings, tmp_path):
    settings.DESKTOP_SERIAL_LOG_DIR = str(tmp_path)
    return tmp_path


def booting(world, *, ready_line="QUETZAL-READY", **kwargs) -> Desktop:
    """A desktop whose VM just started (running, not yet ready), of an image with the given readiness line."""
    template = kwargs.pop("template", None) or DesktopTemplateFactory(image=ImageFactory(ready_line=ready_line))
    return DesktopFactory(world=world, template=template, host=HostFactory(), running_since=timezone.now(), **kwargs)


def test_it_is_ready_when_the_guest_prints_its_line_not_before(alice, bob, serial_dir):
    # given two booting desktops, each with a launch waiting, one of another tenant
    mine, theirs = booting(alice), booting(bob)
    readiness.record_launch(desktop=mine, kind=LaunchKind.COLD, at=timezone.now() - timedelta(seconds=20))
    # when only a look-alike line is on alice's serial port (and nothing yet on bob's)
    with open(serial_log_path(mine), "w") as fh:
        fh.write("Booting\nQUETZAL-READYish 3\n")
    open(serial_log_path(theirs), "w").close()
    # then nothing is ready
    assert readiness.probe_all() == 0
    # when the real line arrives
    with open(serial_log_path(mine), "a") as fh:
        fh.write("QUETZAL-READY 17.2\r\n")
    # then alice's desktop is ready, the launch took ~20 s, and bob's still boots
    assert readiness.probe_all() == 1
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.ready_at is not None and theirs.ready_at is None
    timing = LaunchTiming.objects.get(desktop=mine)
    assert timing.signal == ReadySignal.SERIAL and 19 <= timing.seconds <= 30
    assert readiness.status(mine)["ready"] is True and readiness.status(theirs)["booting_s"] is not None


def test_it_looks_at_the_screen_of_a_desktop_whose_serial_log_is_on_another_machine(alice, serial_dir):
    # given a booting demo desktop on a host whose serial logs are not on this machine
    desktop = booting(alice)
    assert not (serial_dir / f"{desktop.domain_name}-serial.log").exists()
    now = timezone.now()
    # when its screen shows a picture, then it is not ready at once
    screen = Screen([DESKTOP])
    assert readiness.probe_all(now=now, hypervisor=screen) == 0
    # then the same picture for SETTLE_S is ready, well before the time limit
    assert readiness.probe_all(now=now + timedelta(seconds=readiness.SETTLE_S), hypervisor=screen) == 1
    assert LaunchTiming.objects.filter(desktop=desktop).count() == 0
    desktop.refresh_from_db()
    assert desktop.ready_at is not None


def test_it_waits_for_the_line_not_the_screen_when_the_serial_log_is_here(alice, serial_dir):
    # given a booting demo desktop whose serial log this machine reads, with no readiness line in it yet
    desktop = booting(alice)
    open(serial_log_path(desktop), "w").close()
    now = timezone.now()
    screen = Screen([DESKTOP])
    # then a settled screen does not make it ready (X paints long before the desktop takes input)
    for step in range(0, 30, 5):
        assert readiness.probe_all(now=now + timedelta(seconds=step), hypervisor=screen) == 0


def test_it_waits_for_a_settled_screen_that_is_not_blank(alice, serial_dir):
    # given an image that says nothing about readiness
    desktop = booting(alice, ready_line="")
    now = timezone.now()
    # when the screen is black for a long time, then it is not ready
    screen = Screen([BLACK])
    for step in range(0, 30, 5):
        assert readiness.probe_all(now=now + timedelta(seconds=step), hypervisor=screen) == 0
    # when a picture appears and changes before it settles, then it is still not ready
    screen.shots = [DESKTOP, DESKTOP, OTHER, OTHER, OTHER]
    assert readiness.probe_all(now=now + timedelta(seconds=31), hypervisor=screen) == 0
    assert readiness.probe_all(now=now + timedelta(seconds=33), hypervisor=screen) == 0
    assert readiness.probe_all(now=now + timedelta(seconds=34), hypervisor=screen) == 0  # changed: starts over
    assert readiness.probe_all(now=now + timedelta(seconds=37), hypervisor=screen) == 0
    # then the same picture for SETTLE_S is ready
    assert readiness.probe_all(now=now + timedelta(seconds=34 + readiness.SETTLE_S), hypervisor=screen) == 1
    desktop.refresh_from_db()
    assert desktop.ready_at is not None and desktop.ready_probe == ""


def test_it_takes_the_guest_agent_at_its_word(alice, serial_dir):
    desktop = booting(alice, ready_line="")
    readiness.record_launch(desktop=desktop, kind=LaunchKind.COLD)
    assert readiness.probe_all(hypervisor=Screen([BLACK], agent=True)) == 1
    assert LaunchTiming.objects.get(desktop=desktop).signal == ReadySignal.AGENT


def test_it_lets_a_silent_guest_through_after_the_time_limit(alice, serial_dir):
    desktop = booting(alice)
    later = timezone.now() + timedelta(seconds=readiness.READY_TIMEOUT_S + 1)
    assert readiness.probe_all(now=later) == 1
    desktop.refresh_from_db()
    assert desktop.ready_at == later


def test_it_ends_the_wait_of_a_desktop_it_cannot_look_at(alice, serial_dir):
    # Given a desktop running for longer than the time limit whose guest cannot be reached (no host known)
    desktop = DesktopFactory(world=alice, host=None, running_since=timezone.now() - timedelta(hours=2))
    # When someone waits on it (the launcher, the console), then the probe they ask for stops the wait
    assert readiness.probe_one(desktop.pk)
    desktop.refresh_from_db()
    assert desktop.ready_at is not None


def test_it_forgets_readiness_when_the_desktop_stops_but_not_when_it_pauses(alice, serial_dir):
    desktop = booting(alice)
    assert readiness.mark_ready(desktop=desktop, signal=ReadySignal.SERIAL)
    # a second mark does nothing: one call wins
    assert not readiness.mark_ready(desktop=desktop, signal=ReadySignal.SERIAL)
    assert transition(desktop, DesktopState.SUSPENDED)
    desktop.refresh_from_db()
    assert desktop.ready_at is not None
    assert transition(desktop, DesktopState.RUNNING) and transition(desktop, DesktopState.STOPPING)
    desktop.refresh_from_db()
    assert desktop.ready_at is None


def test_it_is_ready_at_once_after_restoring_a_ready_guest_only(alice, serial_dir):
    # given one desktop saved while ready and one saved while it still booted (a fresh pool desktop)
    ready, fresh = booting(alice), booting(alice)
    readiness.mark_ready(desktop=ready, signal=ReadySignal.SERIAL)
    for desktop in (ready, fresh):
        desktop.refresh_from_db()
        readiness.remember_saved(desktop)
        assert transition(desktop, DesktopState.STOPPING) and transition(desktop, DesktopState.HIBERNATED)
        assert transition(desktop, DesktopState.STARTING) and transition(desktop, DesktopState.RUNNING)
        # when each is restored
        readiness.after_boot(desktop, restored=True)
    # then the ready one is ready again and the fresh one waits for its guest
    ready.refresh_from_db()
    fresh.refresh_from_db()
    assert ready.ready_at is not None and fresh.ready_at is None


def test_it_remembers_through_a_real_hibernation_that_the_guest_was_ready(alice, host, template, work):
    from desktops.services.requests import request_action

    # given a launched desktop whose guest is ready (the test driver's guests are ready at once)
    with work():
        desktop = launch.launch(tenant=alice.tenant, user=alice.member, template=template).desktop
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.RUNNING and desktop.ready_at is not None
    # when it hibernates through the worker's operation
    with work():
        request_action(desktop=desktop, kind="hibernate", actor=alice.member)
    # then it is saved with its readiness noted, so restoring it needs no new signal from the guest
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.HIBERNATED
    assert desktop.ready_at is None and desktop.ready_probe == readiness.SAVED_READY


def test_it_counts_a_readiness_line_not_yet_probed_when_saving(alice, serial_dir):
    # given a booting desktop whose guest printed its line after the last probe, and one that did not
    said, silent = booting(alice), booting(alice)
    with open(serial_log_path(said), "w") as fh:
        fh.write("QUETZAL-READY 21.0\n")
    open(serial_log_path(silent), "w").close()
    # when both are saved, then only the one that said it was ready is restored as ready
    readiness.remember_saved(said)
    readiness.remember_saved(silent)
    said.refresh_from_db()
    silent.refresh_from_db()
    assert said.ready_probe == readiness.SAVED_READY and silent.ready_probe == ""


def test_it_records_warm_and_cold_launches(alice, serial_dir):
    # given a pool with one warm desktop that is ready, and a template with no pool
    pooled_template = DesktopTemplateFactory()
    pool = PoolFactory(world=alice, template=pooled_template, warm_state=DesktopState.RUNNING)
    warm = DesktopFactory(
        tenant=alice.tenant, user=None, kind=DesktopKind.POOLED, pool=pool, template=pooled_template, host=HostFactory()
    )
    readiness.mark_ready(desktop=warm, signal=ReadySignal.SERIAL)
    # when alice's member launches both
    claimed = launch.launch(tenant=alice.tenant, user=alice.member, template=pooled_template)
    cold = launch.launch(tenant=alice.tenant, user=alice.member, template=DesktopTemplateFactory())
    # then the warm launch was ready at once and the cold one waits for its guest
    assert claimed.desktop.pk == warm.pk
    warm_timing = LaunchTiming.objects.get(desktop=warm)
    assert (warm_timing.kind, warm_timing.seconds) == (LaunchKind.WARM, 0.0)
    cold_timing = LaunchTiming.objects.get(desktop=cold.desktop)
    assert cold_timing.kind == LaunchKind.COLD and cold_timing.seconds is None


def test_it_reports_p50_and_p95_per_template_for_one_tenant(alice, bob):
    # given ten cold launches of one template taking 1..10 s, and bob's slow one
    template = DesktopTemplateFactory(name="Graphical")
    desktop = DesktopFactory(world=alice, template=template)
    now = timezone.now()
    for seconds in range(1, 11):
        LaunchTiming.objects.create(
            tenant=alice.tenant, desktop=desktop, template=template, kind=LaunchKind.COLD,
            requested_at=now, ready_at=now, seconds=float(seconds),
        )  # fmt: skip
    theirs = DesktopFactory(world=bob, template=template)
    LaunchTiming.objects.create(
        tenant=bob.tenant, desktop=theirs, template=template, kind=LaunchKind.COLD, seconds=500.0
    )
    # when alice's figures are asked for
    (stats,) = readiness.ready_stats(tenant=alice.tenant)
    # then they are alice's alone
    assert (stats.template, stats.kind, stats.count) == (template, LaunchKind.COLD, 10)
    assert stats.p50_s == pytest.approx(5.5) and 9.0 < stats.p95_s <= 10.0


def test_it_answers_readiness_to_the_owner_and_404_to_another_tenant(alice, bob, serial_dir):
    desktop = booting(alice)
    mine = api_client(alice.member, alice.tenant).get(f"/api/v1/desktops/{desktop.pk}/readiness/")
    assert mine.status_code == 200
    body = mine.json()
    assert body["ready"] is False and body["state"] == "running" and body["booting_s"] >= 0
    other = api_client(bob.member, bob.tenant).get(f"/api/v1/desktops/{desktop.pk}/readiness/")
    assert other.status_code == 404


def test_it_calls_a_flat_screen_blank_and_a_picture_not() -> None:
    assert readiness.is_blank(BLACK) and readiness.is_blank(png(4, 4, lambda x, y: (30, 58, 77)))
    assert not readiness.is_blank(DESKTOP)
    assert readiness.is_blank(b"P6\n2 1\n255\n" + bytes(6))
