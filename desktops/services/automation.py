"""Driving a running desktop from the API, with no agent in the guest: its screen, its keyboard and its pointer.

Like the console proxy, these calls reach the hypervisor during the request: a screenshot or a key press is
interactive and short, and the answer is the point (a queued task would only add a round trip through Redis).
Every call is bounded (batch size, text length, waits), and every input batch is audited.
"""

from __future__ import annotations

import functools
import hashlib
import io
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext

from desktops.choices import DesktopState
from desktops.models import Desktop
from desktops.services.automation_tokens import require_access
from hosts.hypervisor import (
    DomainNotFound,
    HostUnavailable,
    HypervisorError,
    InvalidDomainState,
    NotSupported,
    get_hypervisor,
)
from hosts.hypervisor.input import (
    DEFAULT_LAYOUT,
    PointerButton,
    PointerEvent,
    UnknownKey,
    UnsupportedCharacter,
    chord_codes,
    text_chords,
)
from quetzal.errors import Conflict, NotFound, ServiceError
from tenants import events
from tenants.models import ApiToken, User

# Bounds of one input batch and of the waits in it; the API states them in its schema.
MAX_ACTIONS = 100
MAX_TEXT_CHARS = 2000
MAX_WAIT_MS = 10_000
MAX_BATCH_S = 60.0
MAX_SCROLL_STEPS = 20
MAX_SCREEN_PIXELS = 16384
# How long a key is held (QEMU's own send-key default is 100 ms; shorter keeps typing quick, longer than a frame).
KEY_HOLD_MS = 20
# Screen-change waits: how often the screen is looked at, and the longest wait one request may ask for.
POLL_INTERVAL_S = 0.1
MAX_CHANGE_WAIT_MS = 30_000
SCALE_BOUNDS = (16, 4096)

# The console says a script drives the desktop for this long after its last input batch.
DRIVEN_FOR_S = 60

ACTION_TYPES = ("text", "key", "move", "click", "double_click", "drag", "scroll", "wait")


@dataclass(frozen=True)
class Screen:
    """One look at the screen: PNG bytes, the screen's own size, and a digest of its pixels."""

    png: bytes
    width: int
    height: int
    digest: str


class DesktopNotRunning(Conflict):
    code = "desktop_not_running"


def drivable_desktop(
    desktop: Desktop,
    *,
    actor: User | None,
    token: ApiToken | None = None,
    write: bool = False,
    refuse: Callable[[Desktop], None] | None = None,
) -> Desktop:
    """The desktop as it is now, when automation may drive it and it runs on a host (403 or 409 otherwise).

    `refuse` adds a caller's own checks (e.g. exec's), after the policy and before the running state.
    """
    current = Desktop.objects.select_related("host", "tenant", "template").filter(pk=desktop.pk).first()
    if current is None:  # deleted since the view found it
        raise NotFound(gettext("No such desktop."))
    require_access(tenant=current.tenant, token=token, write=write, desktop=current, actor=actor)
    if refuse is not None:
        refuse(current)
    if current.state != DesktopState.RUNNING or current.host is None:
        raise DesktopNotRunning(
            gettext("%(name)s is %(lower)s; automation needs it running.")
            % {"name": current.name, "lower": current.get_state_display().lower()}
        )
    return current


def host_uri_of(desktop: Desktop) -> str:
    """The URI of the host a desktop drivable_desktop() returned runs on (it has one)."""
    assert desktop.host is not None, "drivable_desktop() refuses a desktop without a host"
    return desktop.host.uri


def hypervisor_call(call: Callable[[], Any]) -> Any:
    """Run one hypervisor call, answering its failures with stable codes (never a 500)."""
    try:
        return call()
    except (InvalidDomainState, DomainNotFound):
        raise DesktopNotRunning(gettext("The desktop's VM is not running on its host.")) from None
    except HostUnavailable:
        raise
    except NotSupported as error:
        raise ServiceError(
            gettext("This desktop's host cannot do that: %(message)s") % {"message": error.message},
            code="automation_not_supported",
            status=409,
        ) from None
    except HypervisorError as error:
        raise ServiceError(
            gettext("The host refused: %(message)s") % {"message": error.message}, code="hypervisor_error", status=502
        ) from None


def _image(data: bytes):
    """The dump as a Pillow image (PNG or PPM, whichever the host sent)."""
    from PIL import Image, UnidentifiedImageError  # only automation decodes images

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as error:
        raise ServiceError(
            gettext("The host sent no readable image: %(error)s") % {"error": error},
            code="hypervisor_error",
            status=502,
        ) from None
    return image.convert("RGB")


def _look(desktop: Desktop):
    """The running desktop's screen as an RGB image."""
    shot = hypervisor_call(lambda: get_hypervisor(host_uri_of(desktop)).screenshot(desktop.domain_name))
    return _image(shot.data)


def _digest(image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()[:32]


def _png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()


def screenshot(
    *,
    desktop: Desktop,
    actor: User | None = None,
    token: ApiToken | None = None,
    max_width: int | None = None,
    max_height: int | None = None,
) -> Screen:
    """The current screen as PNG, shrunk (keeping its aspect) to fit max_width x max_height when given."""
    desktop = drivable_desktop(desktop, actor=actor, token=token)
    image = _look(desktop)
    width, height = image.size
    digest = _digest(image)
    _remember(desktop, digest, image)
    bound_w, bound_h = max_width or width, max_height or height
    if width > bound_w or height > bound_h:
        from PIL import Image  # Pillow loads only where screens are handled

        ratio = min(bound_w / width, bound_h / height)
        image = image.resize((max(1, round(width * ratio)), max(1, round(height * ratio))), Image.Resampling.LANCZOS)
    return Screen(png=_png(image), width=width, height=height, digest=digest)


def is_driven(desktop: Desktop) -> bool:
    """Whether automation sent input to the desktop recently (the console shows a banner then)."""
    at = desktop.automation_at
    return at is not None and (timezone.now() - at).total_seconds() < DRIVEN_FOR_S


# --- input -----------------------------------------------------------------------------------------------


def _point(action: Mapping[str, Any], width: int, height: int, x: str = "x", y: str = "y") -> tuple[int, int]:
    px, py = action[x], action[y]
    if not (0 <= px < width and 0 <= py < height):
        raise ServiceError(
            gettext("(%(px)s, %(py)s) is off the %(width)sx%(height)s screen.")
            % {"px": px, "py": py, "width": width, "height": height},
            code="point_off_screen",
            status=400,
        )
    return px, py


def _pointer_steps(action: Mapping[str, Any], width: int, height: int) -> list[PointerEvent]:
    """One pointer action as synchronised steps (a press and its release never share one)."""
    kind = action["type"]
    x, y = _point(action, width, height)
    button = PointerButton(action.get("button") or "left")
    if kind == "move":
        return [PointerEvent(x=x, y=y)]
    if kind in ("click", "double_click"):
        press = [PointerEvent(button=button, down=True), PointerEvent(button=button, down=False)]
        return [PointerEvent(x=x, y=y), *press, *(press if kind == "double_click" else [])]
    if kind == "drag":
        to_x, to_y = _point(action, width, height, "to_x", "to_y")
        # A few moves between press and release: toolkits start a drag only after the pointer travels.
        path = [PointerEvent(x=round(x + (to_x - x) * i / 4), y=round(y + (to_y - y) * i / 4)) for i in range(1, 5)]
        return [PointerEvent(x=x, y=y), PointerEvent(button=button, down=True), *path,
                PointerEvent(button=button, down=False)]  # fmt: skip
    if kind == "scroll":
        dy = action.get("dy") or 0
        wheel = PointerButton.WHEEL_DOWN if dy > 0 else PointerButton.WHEEL_UP
        clicks = [
            PointerEvent(button=wheel, down=d) for _ in range(min(abs(dy), MAX_SCROLL_STEPS)) for d in (True, False)
        ]
        return [PointerEvent(x=x, y=y), *clicks]
    raise ServiceError(f"Unknown action {kind!r}.", code="invalid_action")


def _chords(action: Mapping[str, Any], layout: str) -> list[tuple[int, ...]]:
    try:
        if action["type"] == "text":
            return text_chords(action["text"], layout)
        return [chord_codes(action["keys"])] * int(action.get("repeat") or 1)
    except UnsupportedCharacter as error:
        raise ServiceError(str(error), code="unsupported_character") from None
    except UnknownKey as error:
        raise ServiceError(str(error), code="unknown_key") from None


def _plan(
    actions: Sequence[Mapping[str, Any]], screen_size: Callable[[], tuple[int, int]], layout: str = DEFAULT_LAYOUT
) -> list[tuple[str, Any]]:
    """Every action checked and turned into hypervisor steps before the first is sent (all or nothing refused)."""
    if not actions or len(actions) > MAX_ACTIONS:
        raise ServiceError(
            gettext("Send 1 to %(MAX_ACTIONS)s actions.") % {"MAX_ACTIONS": MAX_ACTIONS}, code="invalid_actions"
        )
    steps: list[tuple[str, Any]] = []
    waited = 0
    for action in actions:
        kind = action.get("type")
        if kind in ("text", "key"):
            steps.extend(("keys", chord) for chord in _chords(action, layout))
        elif kind == "wait":
            waited += action["ms"]
            steps.append(("wait", action["ms"] / 1000))
        elif kind in ACTION_TYPES:
            width, height = screen_size()
            steps.append(("pointer", (_pointer_steps(action, width, height), width, height)))
        else:
            raise ServiceError(f"Unknown action {kind!r}.", code="invalid_action")
    if waited / 1000 > MAX_BATCH_S / 2:
        raise ServiceError(
            gettext("A batch waits at most %(value).0f s in all.") % {"value": MAX_BATCH_S / 2}, code="invalid_actions"
        )
    return steps


def send_input(
    *,
    desktop: Desktop,
    actions: Sequence[Mapping[str, Any]],
    actor: User | None,
    token: ApiToken | None = None,
    ip: str | None = None,
) -> dict[str, Any]:
    """Carry out a batch of keyboard, pointer and wait actions in order; audited as one event."""
    desktop = drivable_desktop(desktop, actor=actor, token=token, write=True)
    hv = get_hypervisor(host_uri_of(desktop))
    size: list[tuple[int, int]] = []

    def screen_size() -> tuple[int, int]:
        # Pointer coordinates are screen pixels; the size is read once per batch, from the screen itself.
        if not size:
            size.append(_look(desktop).size)
        return size[0]

    steps = _plan(actions, screen_size, desktop.template.keyboard_layout)
    started = time.monotonic()
    keys = 0
    for kind, step in steps:
        if time.monotonic() - started > MAX_BATCH_S:
            raise ServiceError(gettext("The batch took too long and was cut short."), code="input_timeout", status=504)
        if kind == "keys":
            hypervisor_call(functools.partial(hv.send_keys, desktop.domain_name, step, KEY_HOLD_MS))
            keys += 1
        elif kind == "pointer":
            pointer, width, height = step
            hypervisor_call(functools.partial(hv.send_pointer, desktop.domain_name, pointer, width, height))
        else:
            time.sleep(step)
    now = timezone.now()
    # Automation is input: the idle policy waits, and the console shows whoever watches that a script drives.
    Desktop.objects.filter(pk=desktop.pk).update(last_activity_at=now, automation_at=now)
    kinds = sorted({a["type"] for a in actions})
    events.desktop_input(actor=actor, desktop=desktop, actions=len(actions), kinds=kinds, token=token, ip=ip)
    return {"actions": len(actions), "keys": keys, "elapsed_ms": round((time.monotonic() - started) * 1000)}


# --- waiting for the screen ------------------------------------------------------------------------------

# A text console's blinking cursor (a 9x2 underline) changes 18 pixels twice a second: by default a change
# must be larger than that to count. Callers that need every pixel ask for ignore_pixels=0.
DEFAULT_IGNORE_PIXELS = 24
MAX_IGNORE_PIXELS = 1_000_000
# Screens a screenshot showed are kept this long, so a later wait can compare against them pixel by pixel.
SCREEN_MEMORY_S = 120


def _screen_key(desktop: Desktop, digest: str) -> str:
    return f"quetzal:automation:screen:{desktop.pk}:{digest}"


def _remember(desktop: Desktop, digest: str, image) -> None:
    width, height = image.size
    packed = width.to_bytes(4, "big") + height.to_bytes(4, "big") + zlib.compress(image.tobytes(), 1)
    cache.set(_screen_key(desktop, digest), packed, SCREEN_MEMORY_S)


def _recall(desktop: Desktop, digest: str):
    packed = cache.get(_screen_key(desktop, digest))
    if packed is None:
        return None
    from PIL import Image  # Pillow loads only where screens are handled

    size = (int.from_bytes(packed[:4], "big"), int.from_bytes(packed[4:8], "big"))
    return Image.frombytes("RGB", size, zlib.decompress(packed[8:]))


def changed_pixels(before, after) -> int:
    """How many pixels differ between two screens (every pixel when the size changed)."""
    from PIL import ImageChops  # Pillow loads only where screens are handled

    if before.size != after.size:
        return max(before.size[0] * before.size[1], after.size[0] * after.size[1])
    difference = ImageChops.difference(before, after).convert("L")
    return before.size[0] * before.size[1] - difference.histogram()[0]


def wait_for_screen(
    *,
    desktop: Desktop,
    until: str,
    timeout_ms: int,
    still_ms: int = 500,
    since: str | None = None,
    ignore_pixels: int = DEFAULT_IGNORE_PIXELS,
    actor: User | None = None,
    token: ApiToken | None = None,
) -> dict[str, Any]:
    """Look until the screen differs from `since` (a screenshot's digest) or the first look, or keeps still.

    A change counts when more than ignore_pixels pixels differ. A timeout is an answer, not an error:
    {"changed": false} or {"still": false}.
    """
    desktop = drivable_desktop(desktop, actor=actor, token=token)
    started = time.monotonic()
    deadline = started + min(timeout_ms, MAX_CHANGE_WAIT_MS) / 1000
    current = _look(desktop)
    baseline = current
    if since is not None:
        # A screen not remembered (expired, or shown by another process's cache) compares by digest alone.
        baseline = _recall(desktop, since)
    last, last_change = current, started

    def differs(a, b) -> bool:
        return a is None or changed_pixels(a, b) > ignore_pixels

    while True:
        now = time.monotonic()
        if until == "change":
            done = differs(baseline, current) if baseline is not None else _digest(current) != since
        else:
            done = (now - last_change) * 1000 >= still_ms
        if done or now >= deadline:
            digest = _digest(current)
            _remember(desktop, digest, current)
            key = "changed" if until == "change" else "still"
            return {key: done, "digest": digest, "waited_ms": round((now - started) * 1000)}
        time.sleep(POLL_INTERVAL_S)
        current = _look(desktop)
        if differs(last, current):
            last, last_change = current, time.monotonic()
