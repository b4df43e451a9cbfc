"""Lifecycle signals → live events: state changes and operation progress reach pages once committed."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from desktops.metrics import conf, live

log = logging.getLogger(__name__)


def push_state(*, desktop_id: int, state: str, at: datetime) -> int:
    """Tell a desktop's watchers and its tenant's admins that it entered `state`."""
    from desktops.models import Desktop

    row = Desktop.objects.filter(pk=desktop_id).values("tenant_id", "status_reason").first()
    if row is None:
        return 0
    return live.publish(
        live.state_pushes(
            desktop_id=desktop_id, tenant_id=row["tenant_id"], state=state, reason=row["status_reason"], at=at
        )
    )


def on_desktop_state_changed(sender, *, desktop_id: int, state: str, at: datetime, **kwargs) -> None:
    """After the transaction that moved the desktop commits (a rolled-back move was never real)."""
    if conf.push_enabled():
        transaction.on_commit(lambda: push_state(desktop_id=desktop_id, state=state, at=at), robust=True)


def on_operation_progress(sender, *, operation, **kwargs) -> None:
    """After the step or outcome is committed, push it with what the operation holds right now."""
    if not conf.push_enabled():
        return
    # Captured now: the worker goes on changing the same object before the callback may run.
    pushes = live.operation_pushes(
        operation_id=operation.pk,
        desktop_id=operation.desktop_id,
        tenant_id=operation.tenant_id,
        kind=operation.kind,
        status=operation.status,
        step=operation.step,
        error_code=operation.error_code,
        error=operation.error,
    )
    transaction.on_commit(lambda: live.publish(pushes), robust=True)


def connect() -> None:
    """Listen to the lifecycle signals (called once from the app's ready())."""
    from desktops.signals import desktop_state_changed, operation_progress

    desktop_state_changed.connect(on_desktop_state_changed, dispatch_uid="desktops.metrics.state")
    operation_progress.connect(on_operation_progress, dispatch_uid="desktops.metrics.operation")
