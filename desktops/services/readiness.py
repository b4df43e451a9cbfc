"""Honest readiness: a desktop is ready for input when its guest says so, not when its VNC socket opens.

Signals, best first: the readiness line the image's guest prints on its serial port (the demo images, on a
host whose serial logs this machine can read), the guest agent answering, and otherwise a screen that stayed
the same, and not blank, for SETTLE_S seconds. Readiness is a fact the platform observes rather than an action
anybody takes, so it writes no audit event; the launch timings it completes are what the dashboard shows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import statistics
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from desktops import dispatch
from desktops.choices import DesktopState, LaunchKind, ReadySignal
from desktops.models import Desktop, DesktopTemplate, LaunchTiming
from desktops.services.spec import serial_log_path
from hosts.hypervisor import HypervisorError, get_hypervisor

log = logging.getLogger(__name__)

# A screen unchanged this long (and not blank) counts as ready for images that say nothing.
SETTLE_S = 5.0
# A guest that never signals is let through after this, so a console never holds keys for ever.
READY_TIMEOUT_S = 900.0
# The readiness line comes early in a boot; the text demo mirrors its screen to the serial port after it.
_SERIAL_READ_LIMIT = 2 * 1024 * 1024
# ready_probe value of a desktop that was ready when its memory was saved: restoring it is ready at once.
SAVED_READY = "saved-ready"


def serial_says_ready(desktop: Desktop, ready_line: str) -> bool:
    """Whether the guest printed its readiness line since this boot (QEMU truncates the log at start)."""
    try:
        with open(serial_log_path(desktop), "rb") as fh:
            text = fh.read(_SERIAL_READ_LIMIT).decode("utf-8", errors="replace")
    except OSError:
        return False
    return any(line.strip().split(" ", 1)[0] == ready_line for line in text.splitlines())


def is_blank(image: bytes) -> bool:
    """Whether a screenshot (PNG or PPM) is one flat colour, e.g. firmware clearing the screen or a dark VT."""
    if image[:8] == b"\x89PNG\r\n\x1a\n":
        data = b"".join(_png_chunks(image, b"IDAT"))
        try:
            pixels = zlib.decompress(data)
        except zlib.error:
            return True
    else:
        pixels = image.split(b"\n", 3)[-1] if image[:2] == b"P6" else image
    # A flat screen filters to very few distinct byte values (row filter bytes, the colour, zeros).
    return len(set(pixels[:4_000_000])) <= 4


def _png_chunks(image: bytes, kind: bytes):
    pos = 8
    while pos + 8 <= len(image):
        length = int.from_bytes(image[pos : pos + 4], "big")
        if image[pos + 4 : pos + 8] == kind:
            yield image[pos + 8 : pos + 8 + length]
        pos += 12 + length


@dataclass(frozen=True)
class Look:
    """What one probe saw: a signal when the desktop is ready, else the screen mark to remember."""

    signal: str | None
    probe: str = ""


def look(desktop: Desktop, *, now: datetime, hypervisor=None) -> Look:
    """Ask the guest (through its serial log, agent or screen) whether it is ready for input."""
    image = desktop.template.image
    if desktop.host is not None and desktop.host.uri.startswith("test:"):
        return Look(ReadySignal.SIMULATED)  # libvirt's test driver runs no guest: nothing to wait for
    if image.ready_line and os.path.exists(serial_log_path(desktop)):
        # The image tells us itself; a settled screen means nothing for it (X paints long before it is usable).
        return Look(ReadySignal.SERIAL if serial_says_ready(desktop, image.ready_line) else None)
    # No serial log here: the desktop runs on another machine, whose log is on that machine (QEMU creates it
    # when it starts, so a local one always has it). Its agent and its screen are reachable through libvirt.
    if desktop.host is None:
        return Look(None, desktop.ready_probe)
    hv = hypervisor or get_hypervisor(desktop.host.uri)
    try:
        if hv.agent_ping(desktop.domain_name):
            return Look(ReadySignal.AGENT)
        shot = hv.screenshot(desktop.domain_name).data
    except HypervisorError as error:
        log.info("cannot look at desktop %s yet: %s", desktop.pk, error)
        return Look(None, desktop.ready_probe)
    if is_blank(shot):
        return Look(None, "")
    digest = hashlib.sha256(shot).hexdigest()[:32]
    previous_digest, _, since = desktop.ready_probe.partition(" ")
    if previous_digest == digest and since:
        if now.timestamp() - float(since) >= SETTLE_S:
            return Look(ReadySignal.SCREEN)
        return Look(None, desktop.ready_probe)
    return Look(None, f"{digest} {now.timestamp()!r}")


def pending():
    """Running desktops whose guest has not said it is ready."""
    # Host-less ones too (look() cannot see them, but their wait still ends at READY_TIMEOUT_S).
    return Desktop.objects.filter(state=DesktopState.RUNNING, ready_at__isnull=True).select_related(
        "template__image", "host"
    )


def probe(desktop: Desktop, *, now: datetime | None = None, hypervisor=None) -> bool:
    """Look at one booting desktop once; whether it became ready."""
    at = now or timezone.now()
    started = desktop.running_since or desktop.state_changed_at
    if (at - started).total_seconds() >= READY_TIMEOUT_S:
        # Waited long enough: no need to reach the guest (or its host) again to stop waiting.
        return mark_ready(desktop=desktop, signal=ReadySignal.TIMEOUT, at=at)
    seen = look(desktop, now=at, hypervisor=hypervisor)
    signal = seen.signal
    if signal is not None:
        return mark_ready(desktop=desktop, signal=signal, at=at)
    if seen.probe != desktop.ready_probe:
        Desktop.objects.filter(pk=desktop.pk, ready_at__isnull=True).update(ready_probe=seen.probe)
    return False


def probe_one(desktop_id: int) -> bool:
    """Probe this desktop if it still boots (a task: gone or already ready is nothing to do)."""
    desktop = pending().filter(pk=desktop_id).first()
    return desktop is not None and probe(desktop)


def probe_all(*, now: datetime | None = None, hypervisor=None) -> int:
    """Look at every desktop still booting once; mark the ready ones. Returns how many became ready."""
    _complete_timings_of_ready(now or timezone.now())
    return sum(probe(desktop, now=now, hypervisor=hypervisor) for desktop in pending())


def watch(desktop: Desktop) -> dict[str, object]:
    """Someone waits for this desktop (the launcher, the console): its status now, and a probe soon if it boots.

    The probe runs on a worker (it reads the host's serial log or screen), never in the request itself.
    """
    answer = status(desktop)
    if answer["booting_s"] is not None:
        dispatch.probe_readiness(desktop.pk)
    return answer


def _complete_timings_of_ready(at: datetime) -> None:
    """Launches of desktops that needed no new signal (a paused one unpaused) complete when seen running."""
    waiting = LaunchTiming.objects.filter(
        ready_at__isnull=True, desktop__state=DesktopState.RUNNING, desktop__ready_at__isnull=False
    )
    for timing in waiting.select_related("desktop"):
        _complete(timing, at=max(at, timing.requested_at), signal=ReadySignal.RESUMED)


def _complete(timing: LaunchTiming, *, at: datetime, signal: str) -> None:
    timing.ready_at = at
    timing.seconds = max(0.0, (at - timing.requested_at).total_seconds())
    timing.signal = signal
    timing.save(update_fields=["ready_at", "seconds", "signal"])


def mark_ready(*, desktop: Desktop, signal: str, at: datetime | None = None) -> bool:
    """Record that the running desktop is ready for input and finish its launch timings; whether this call did."""
    at = at or timezone.now()
    with transaction.atomic():
        won = (
            Desktop.objects.filter(pk=desktop.pk, state=DesktopState.RUNNING, ready_at__isnull=True).update(
                ready_at=at, ready_probe=""
            )
            == 1
        )
        if not won:
            return False
        desktop.ready_at, desktop.ready_probe = at, ""
        for timing in LaunchTiming.objects.select_for_update().filter(desktop=desktop, ready_at__isnull=True):
            _complete(timing, at=at, signal=signal)
    return True


def remember_saved(desktop: Desktop) -> None:
    """Before its memory is saved: note whether the guest was ready, so restoring it needs no new signal.

    Called before the desktop leaves running (which forgets ready_at). A guest that said so on its serial port
    since the last probe counts too: its line is gone once it is restored (QEMU starts a new log).
    """
    desktop.refresh_from_db(fields=["ready_at", "state"])
    ready = desktop.state == DesktopState.RUNNING and desktop.ready_at is not None
    line = desktop.template.image.ready_line
    if not ready and desktop.state == DesktopState.RUNNING and line:
        ready = serial_says_ready(desktop, line)
    Desktop.objects.filter(pk=desktop.pk).update(ready_probe=SAVED_READY if ready else "")


def after_boot(desktop: Desktop, *, restored: bool) -> None:
    """Right after the VM runs again: a guest restored from a ready state is ready at once."""
    desktop.refresh_from_db(fields=["ready_probe", "ready_at", "state"])
    if desktop.host is not None and desktop.host.uri.startswith("test:"):
        # libvirt's test driver runs no guest at all: there is nothing to wait for.
        mark_ready(desktop=desktop, signal=ReadySignal.SIMULATED)
    elif restored and desktop.ready_probe == SAVED_READY:
        mark_ready(desktop=desktop, signal=ReadySignal.RESUMED)
    elif desktop.ready_probe:
        Desktop.objects.filter(pk=desktop.pk).update(ready_probe="")


def record_launch(*, desktop: Desktop, kind: str, at: datetime | None = None) -> LaunchTiming:
    """A person clicked Launch and got this desktop; when it is (or becomes) ready the timing completes."""
    at = at or timezone.now()
    ready = desktop.state == DesktopState.RUNNING and desktop.ready_at is not None
    # By id: a claim has the desktop without its tenant loaded, and must not read the tenant again for this row.
    return LaunchTiming.objects.create(
        tenant_id=desktop.tenant_id,
        desktop=desktop,
        template_id=desktop.template_id,
        kind=kind,
        requested_at=at,
        ready_at=at if ready else None,
        seconds=0.0 if ready else None,
        signal="" if not ready else "already",
    )


@dataclass(frozen=True)
class ReadyStats:
    """Time to ready of one template's launches of one kind."""

    template: DesktopTemplate
    kind: str
    count: int
    p50_s: float
    p95_s: float


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def ready_stats(*, tenant, days: int = 30) -> list[ReadyStats]:
    """p50/p95 time to ready per template and launch kind over the last `days` days, for one tenant."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        LaunchTiming.objects.for_tenant(tenant)
        .filter(requested_at__gte=since, seconds__isnull=False)
        .select_related("template")
        .order_by("template__name", "kind")
    )
    grouped: dict[tuple[int, str], tuple[DesktopTemplate, list[float]]] = {}
    for row in rows:
        if row.seconds is not None:
            grouped.setdefault((row.template_id, row.kind), (row.template, []))[1].append(row.seconds)
    return [
        ReadyStats(template, kind, len(values), _percentile(values, 50), _percentile(values, 95))
        for (_, kind), (template, values) in grouped.items()
    ]


def status(desktop: Desktop, *, now: datetime | None = None) -> dict[str, object]:
    """What the console page shows: ready or booting (with seconds since the VM started)."""
    now = now or timezone.now()
    running = desktop.state == DesktopState.RUNNING
    started = desktop.running_since or desktop.state_changed_at
    return {
        "id": desktop.pk,
        "state": desktop.state,
        "ready": running and desktop.ready_at is not None,
        "booting_s": round((now - started).total_seconds(), 1) if running and desktop.ready_at is None else None,
        "interval_ms": int(getattr(settings, "DESKTOP_READY_POLL_MS", 1000)),
    }


__all__ = [
    "LaunchKind",
    "ReadySignal",
    "after_boot",
    "is_blank",
    "look",
    "mark_ready",
    "probe_all",
    "ready_stats",
    "record_launch",
    "remember_saved",
    "serial_says_ready",
    "status",
]
