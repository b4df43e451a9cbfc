"""The desktop lifecycle in one table, and the only code that changes Desktop.state (by guarded UPDATE).

`ACTIONS` says, for each operation kind, the states it may start from, the state the desktop holds while a
worker carries it out, and the state it ends in. The web side (`request_action`) checks the starting states,
the worker's handlers move the desktop through the other two, and `ALLOWED_SOURCES` (what `transition`
guards with) is derived from the same rows plus the few recovery moves of reconcile. The named groups of
states live beside the choices, in `desktops.choices`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from desktops.choices import STOPPABLE_STATES, DesktopState, OperationKind
from desktops.models import Desktop
from desktops.signals import desktop_state_changed


@dataclass(frozen=True)
class Action:
    """One row of the lifecycle table."""

    # The states the action may start from (what request_action checks).
    sources: tuple[str, ...]
    # The state the desktop holds while the worker acts; None: it keeps its state meanwhile.
    through: str | None = None
    # The state it ends in; None: the action leaves the state as it found it.
    target: str | None = None
    # False: queued by other services only (request_create makes the create), never by request_action.
    requestable: bool = True


_NOT_DELETING = tuple(s for s in DesktopState if s not in (DesktopState.DELETING, DesktopState.DELETED))

ACTIONS: dict[str, Action] = {
    # A new desktop is placed, cloned and defined, then (if asked) started with the start row below.
    OperationKind.CREATE: Action(
        (DesktopState.REQUESTED,), through=DesktopState.PROVISIONING, target=DesktopState.STOPPED, requestable=False
    ),
    OperationKind.REBUILD: Action(
        (DesktopState.STOPPED, DesktopState.ERROR), through=DesktopState.PROVISIONING, target=DesktopState.STOPPED
    ),
    OperationKind.START: Action(
        (DesktopState.STOPPED, DesktopState.HIBERNATED, DesktopState.ERROR),
        through=DesktopState.STARTING,
        target=DesktopState.RUNNING,
    ),
    # Restoring a hibernated desktop is a start; no request queues it under this name.
    OperationKind.RESTORE: Action(
        (DesktopState.HIBERNATED,), through=DesktopState.STARTING, target=DesktopState.RUNNING, requestable=False
    ),
    OperationKind.STOP: Action(STOPPABLE_STATES, through=DesktopState.STOPPING, target=DesktopState.STOPPED),
    OperationKind.HIBERNATE: Action(
        (DesktopState.RUNNING,), through=DesktopState.STOPPING, target=DesktopState.HIBERNATED
    ),
    OperationKind.SUSPEND: Action((DesktopState.RUNNING,), target=DesktopState.SUSPENDED),
    OperationKind.RESUME: Action((DesktopState.SUSPENDED,), target=DesktopState.RUNNING),
    OperationKind.REBOOT: Action((DesktopState.RUNNING,)),
    # A live migration keeps the desktop running throughout; operators queue it (request_move), people never.
    OperationKind.MIGRATE: Action((DesktopState.RUNNING,), requestable=False),
    OperationKind.SNAPSHOT: Action((DesktopState.STOPPED, DesktopState.RUNNING)),
    # The VM comes back in the snapshot's power state; the record follows it along the start or stop rows.
    OperationKind.REVERT: Action((DesktopState.STOPPED, DesktopState.RUNNING)),
    OperationKind.DELETE_SNAPSHOT: Action((DesktopState.STOPPED, DesktopState.RUNNING, DesktopState.HIBERNATED)),
    # The desktop keeps its state: vCPUs and RAM change while stopped, the disk grows stopped or running
    # (desktops.services.resize narrows by what changes). A resize is requested only through its own service.
    OperationKind.RESIZE: Action((DesktopState.STOPPED, DesktopState.RUNNING), requestable=False),
    OperationKind.DELETE: Action(_NOT_DELETING, through=DesktopState.DELETING, target=DesktopState.DELETED),
    # Queued by a claim of a warm running pooled desktop only; the desktop keeps running meanwhile.
    OperationKind.ATTACH_HOME: Action((DesktopState.RUNNING,), requestable=False),
}

# Moves no action makes on purpose. Reconcile makes the first four when a worker died mid-operation and the
# host shows the VM elsewhere than the record (the hypervisor is the truth about VMs).
RECOVERIES: tuple[tuple[str, str], ...] = (
    (DesktopState.PROVISIONING, DesktopState.STARTING),  # made and booted: on its way to running
    (DesktopState.STARTING, DesktopState.STOPPED),  # the boot never happened
    (DesktopState.STARTING, DesktopState.HIBERNATED),  # an interrupted restore: the saved memory is still there
    (DesktopState.STOPPING, DesktopState.RUNNING),  # an interrupted stop: the guest is still up
    # Open for repairing a failed desktop by hand; no code path takes these today.
    (DesktopState.ERROR, DesktopState.STOPPED),
    (DesktopState.ERROR, DesktopState.RUNNING),
)


def _allowed_sources() -> dict[str, frozenset[str]]:
    """Every move the table allows, per target: the actions' own moves, the recoveries, and failing."""
    moves: set[tuple[str, str]] = set(RECOVERIES)
    for action in ACTIONS.values():
        if action.through is not None:
            moves.update((source, action.through) for source in action.sources)
            if action.target is not None:
                moves.add((action.through, action.target))
        elif action.target is not None:
            moves.update((source, action.target) for source in action.sources)
    # Anything not yet deleted may fail.
    moves.update((s, DesktopState.ERROR) for s in DesktopState if s not in (DesktopState.ERROR, DesktopState.DELETED))
    return {target: frozenset(s for s, t in moves if t == target) for target in DesktopState.values}


# For each target state, the states a desktop may come from.
ALLOWED_SOURCES: dict[str, frozenset[str]] = _allowed_sources()


def can_transition(source: str, target: str) -> bool:
    """Whether the state machine allows source → target."""
    return source in ALLOWED_SOURCES.get(target, frozenset())


def can_request(kind: str, state: str) -> bool:
    """Whether a request may queue the action `kind` on a desktop that is in `state`."""
    action = ACTIONS.get(kind)
    return action is not None and action.requestable and state in action.sources


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
    if target == DesktopState.RUNNING:
        changes.setdefault("running_since", now)
    elif target != DesktopState.SUSPENDED:
        changes.setdefault("running_since", None)
        # A paused guest stays ready; any other state means it must say so again after its next boot.
        changes.setdefault("ready_at", None)
    won = Desktop.objects.filter(pk=desktop_id, state__in=allowed).update(**changes) == 1
    if won and not isinstance(desktop, int):
        for name, value in changes.items():
            setattr(desktop, name, value)
    if won:
        _after_transition(desktop_id, target, now)
    return won


def begin_action(desktop: Desktop, kind: str) -> bool:
    """Move the desktop into the state `kind` passes through, from one it may start from; whether it won."""
    action = ACTIONS[kind]
    if action.through is None:
        raise ValueError(f"{kind} passes through no state of its own")
    return transition(desktop, action.through, sources=action.sources)


def finish_action(desktop: Desktop, kind: str, *, reason: str | None = None, **fields) -> bool:
    """Move the desktop to the state `kind` ends in, from the state it passes through (or its starting states)."""
    action = ACTIONS[kind]
    if action.target is None:
        raise ValueError(f"{kind} leaves the state as it is")
    sources = (action.through,) if action.through is not None else action.sources
    return transition(desktop, action.target, sources=sources, reason=reason, **fields)


def _after_transition(desktop_id: int, target: str, at: datetime) -> None:
    """Let listeners (usage metering, live events) know; they run in the caller's transaction."""
    desktop_state_changed.send(sender=Desktop, desktop_id=desktop_id, state=target, at=at)
