"""The desktop state machine: the only code that changes Desktop.state, by guarded UPDATE."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from desktops.choices import DesktopState as S
from desktops.models import Desktop

# For each target state, the states a desktop may come from.
ALLOWED_SOURCES: dict[str, frozenset[str]] = {
    S.PROVISIONING: frozenset({S.REQUESTED, S.STOPPED, S.ERROR}),  # create, rebuild, retry
    S.STOPPED: frozenset({S.PROVISIONING, S.STOPPING, S.STARTING, S.ERROR}),
    S.STARTING: frozenset({S.STOPPED, S.HIBERNATED, S.PROVISIONING, S.ERROR}),
    S.RUNNING: frozenset({S.STARTING, S.SUSPENDED, S.ERROR, S.STOPPING}),  # stopping: an interrupted stop
    S.STOPPING: frozenset({S.RUNNING, S.SUSPENDED}),
    S.SUSPENDED: frozenset({S.RUNNING}),
    S.HIBERNATED: frozenset({S.STOPPING, S.STARTING}),  # starting: an interrupted restore
    S.DELETING: frozenset({s for s in S.values if s not in (S.DELETING, S.DELETED)}),
    S.DELETED: frozenset({S.DELETING}),
    S.ERROR: frozenset({s for s in S.values if s not in (S.ERROR, S.DELETED)}),
    S.REQUESTED: frozenset(),
}


def can_transition(source: str, target: str) -> bool:
    """Whether the state machine allows source → target."""
    return source in ALLOWED_SOURCES.get(target, frozenset())


def transition(
    desktop: Desktop | int,
    target: str,
    *,
    sources: Iterable[str] | None = None,
    reason: str | None = None,
    **fields,
) -> bool:
    """Move a desktop to `target` if it is in an allowed source state; report whether this call won.

    The conditional UPDATE is the guard: of two racing callers exactly one moves the row.
    `sources` narrows (never widens) the allowed sources for this call.
    """
    allowed = ALLOWED_SOURCES[target]
    if sources is not None:
        allowed = allowed & frozenset(sources)
    desktop_id = desktop if isinstance(desktop, int) else desktop.pk
    now = timezone.now()
    changes = {"state": target, "state_changed_at": now, **fields}
    if reason is not None:
        changes["status_reason"] = reason[:300]
    if target == S.RUNNING:
        changes.setdefault("running_since", now)
    elif target not in (S.SUSPENDED,):
        changes.setdefault("running_since", None)
    won = Desktop.objects.filter(pk=desktop_id, state__in=allowed).update(**changes) == 1
    if won and not isinstance(desktop, int):
        for name, value in changes.items():
            setattr(desktop, name, value)
    if won:
        _after_transition(desktop_id, target, now)
    return won


def _after_transition(desktop_id: int, target: str, at) -> None:
    """Let listeners (usage metering, live events) know; they run in the caller's transaction."""
    from desktops.signals import desktop_state_changed

    desktop_state_changed.send(sender=Desktop, desktop_id=desktop_id, state=target, at=at)
