"""Small formatting filters shared by the portal, the tenant admin (manage) pages and the operators' pages."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.translation import pgettext_lazy

from desktops.choices import TRANSITIONAL_STATES, DesktopState
from desktops.console import reasons
from desktops.models import Desktop
from desktops.state import can_request

register = template.Library()

# Badge colour family per desktop state.
_STATE_TONES = {
    DesktopState.RUNNING: "ok",
    **{state: "busy" for state in TRANSITIONAL_STATES},
    DesktopState.STOPPED: "off",
    DesktopState.HIBERNATED: "sleep",
    DesktopState.SUSPENDED: "sleep",
    DesktopState.ERROR: "bad",
    DesktopState.DELETED: "off",
}


@register.filter
def mib(value: int | None) -> str:
    """2048 → '2 GiB', 512 → '512 MiB'."""
    if value is None:
        return "-"
    value = int(value)
    if value >= 1024:
        gib = value / 1024
        return f"{gib:.0f} GiB" if gib == int(gib) or gib >= 100 else f"{gib:.1f} GiB"
    return f"{value} MiB"


@register.filter
def gib_number(value: int | None) -> str:
    """MiB as a GiB number for an input: 2048 → '2', 1536 → '1.5', 1000 → '0.977'."""
    if value is None:
        return ""
    return f"{int(value) / 1024:.3f}".rstrip("0").rstrip(".")


# What the idle policy does, as a verb the page can say ("stop at 14:00"); the codes are IdleAction's values.
_IDLE_VERBS = {
    "stop": pgettext_lazy("idle action", "stop"),
    "hibernate": pgettext_lazy("idle action", "hibernate"),
    "recycle": pgettext_lazy("idle action", "recycle"),
}


@register.filter
def idle_verb_text(code: str) -> str:
    """The idle action code as a verb in the page's language: 'hibernate' → 'hibernate' / 'in den Ruhezustand'."""
    return str(_IDLE_VERBS.get(code, code))


@register.filter
def tone(state: str) -> str:
    """The badge tone of a desktop state: ok, busy, off, sleep or bad."""
    return _STATE_TONES.get(state, "off")


@register.filter
def can(desktop: Desktop, kind: str) -> bool:
    """Whether the lifecycle table lets a request queue `kind` on this desktop now: `{% if d|can:"start" %}`."""
    return can_request(kind, desktop.state)


@register.filter
def short_duration(since: datetime | None) -> str:
    """Time since a moment, short: '45 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    if since is None:
        return ""
    seconds = max(0, int((timezone.now() - since).total_seconds()))
    return seconds_text(seconds)


@register.filter
def seconds_text(seconds: float | int | None) -> str:
    """A number of seconds as '45 s', '12 min', '3 h 5 min' or '2 d 4 h'."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@register.filter
def minutes_until(moment: datetime | None) -> int | None:
    """Whole minutes from now until a moment (0 when past)."""
    if moment is None:
        return None
    return max(0, int((moment - timezone.now()).total_seconds() // 60))


@register.filter
def end_reason(reason: str | None) -> str:
    """A console session's stored end reason as a sentence: 'browser_closed:1005' → 'The browser tab was closed…'."""
    return reasons.describe(reason)


@register.filter
def until_text(moment: datetime | None) -> str:
    """'in 12 min', 'in under a minute', or 'any moment now' once the moment has passed (never 'in 0 min')."""
    if moment is None:
        return ""
    seconds = (moment - timezone.now()).total_seconds()
    if seconds <= 0:
        return "any moment now"
    if seconds < 60:
        return "in under a minute"
    return f"in {seconds_text(seconds)}"
