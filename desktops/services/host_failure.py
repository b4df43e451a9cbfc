"""What happens to desktops when their host goes silent, and when it answers again.

Pooled desktops nobody holds are written off at once (error, "host unavailable") so refill builds
their replacements on the hosts that answer; once the host is back they are deleted there. A
person's desktop keeps its record (its disk lives on that host) and says the host is unavailable
until the host answers again.
"""

from __future__ import annotations

import contextlib
import logging

from desktops import dispatch
from desktops.choices import DesktopKind, DesktopState, OperationKind
from desktops.models import Desktop
from desktops.services.requests import request_action
from desktops.state import transition
from quetzal.errors import ServiceError

log = logging.getLogger(__name__)

POOLED_REPLACED = "Host unavailable: replaced by a desktop on another host."
PERSONAL_UNAVAILABLE = "Host unavailable: this desktop comes back when its host does."


def on_host_down(*, host_id: int) -> list[int]:
    """Write off the host's unassigned pooled desktops and flag its personal ones; return the written-off ids."""
    on_host = Desktop.objects.filter(host_id=host_id).exclude(
        state__in=[DesktopState.DELETED, DesktopState.DELETING, DesktopState.ERROR]
    )
    written_off = []
    for desktop in on_host.filter(kind=DesktopKind.POOLED, user__isnull=True):
        if transition(desktop, DesktopState.ERROR, reason=POOLED_REPLACED):
            written_off.append(desktop.pk)
    on_host.filter(kind=DesktopKind.PERSONAL).update(status_reason=PERSONAL_UNAVAILABLE)
    if written_off:
        log.warning("host %s down: %d pooled desktop(s) to replace", host_id, len(written_off))
        dispatch.refill_pools()
    return written_off


def on_host_back(*, host_id: int) -> list[int]:
    """Delete the written-off pooled desktops left on the host and clear the personal ones' notice."""
    deleting = []
    for desktop in Desktop.objects.filter(host_id=host_id, state=DesktopState.ERROR, status_reason=POOLED_REPLACED):
        # One already busy (an operator deleting it by hand) is left to that operation.
        with contextlib.suppress(ServiceError):
            request_action(desktop=desktop, kind=OperationKind.DELETE, actor=None, params={"reason": "Replaced"})
            deleting.append(desktop.pk)
    Desktop.objects.filter(host_id=host_id, status_reason=PERSONAL_UNAVAILABLE).update(status_reason="")
    return deleting
