"""Console activity on a desktop (open consoles, last activity) for the idle policy; guarded updates only."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, Q
from django.utils import timezone

from desktops.models import Desktop


def console_opened(desktop_id: int, *, at: datetime | None = None) -> None:
    """One more console is open on the desktop."""
    Desktop.objects.filter(pk=desktop_id).update(
        consoles_open=F("consoles_open") + 1, last_activity_at=at or timezone.now()
    )


def console_closed(desktop_id: int, *, at: datetime | None = None) -> None:
    """One console fewer; the counter never goes below zero, whatever order closes arrive in."""
    at = at or timezone.now()
    lowered = Desktop.objects.filter(pk=desktop_id, consoles_open__gt=0).update(
        consoles_open=F("consoles_open") - 1, last_activity_at=at
    )
    if not lowered:
        input_seen(desktop_id, at=at)


def input_seen(desktop_id: int, *, at: datetime) -> bool:
    """Keyboard or pointer input at `at`; last activity only ever moves forward."""
    newer = Q(last_activity_at__lt=at) | Q(last_activity_at__isnull=True)
    return Desktop.objects.filter(newer, pk=desktop_id).update(last_activity_at=at) == 1
