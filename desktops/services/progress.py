"""Operation bookkeeping: claim, steps, success and failure, all by guarded updates."""

from __future__ import annotations

from django.utils import timezone

from desktops.choices import OperationStatus
from desktops.models import Operation
from desktops.signals import operation_progress


def begin(operation_id: int, *, worker: str = "") -> Operation | None:
    """Move a queued operation to running; None when it is not ours (gone, running elsewhere, done)."""
    now = timezone.now()
    won = Operation.objects.filter(pk=operation_id, status=OperationStatus.QUEUED).update(
        status=OperationStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:200]
    )
    if not won:
        return None
    return Operation.objects.select_related("desktop", "desktop__template", "desktop__tenant", "desktop__host").get(
        pk=operation_id
    )


def step(operation: Operation, name: str) -> None:
    """Record progress (and prove the worker is alive)."""
    now = timezone.now()
    operation.step = name
    operation.steps = [*operation.steps, {"step": name, "at": now.isoformat()}]
    operation.heartbeat_at = now
    Operation.objects.filter(pk=operation.pk).update(step=name, steps=operation.steps, heartbeat_at=now)
    operation_progress.send(sender=Operation, operation=operation)


def succeed(operation: Operation) -> bool:
    now = timezone.now()
    won = Operation.objects.filter(pk=operation.pk, status=OperationStatus.RUNNING).update(
        status=OperationStatus.SUCCEEDED, finished_at=now, heartbeat_at=now
    )
    operation.status = OperationStatus.SUCCEEDED
    operation_progress.send(sender=Operation, operation=operation)
    return bool(won)


def fail(operation: Operation, *, code: str, message: str) -> bool:
    """Finish an operation as failed with a reason, whether queued or running."""
    now = timezone.now()
    won = Operation.objects.filter(
        pk=operation.pk, status__in=(OperationStatus.QUEUED, OperationStatus.RUNNING)
    ).update(status=OperationStatus.FAILED, finished_at=now, error_code=code[:64], error=message)
    operation.status, operation.error_code, operation.error = OperationStatus.FAILED, code, message
    operation_progress.send(sender=Operation, operation=operation)
    return bool(won)


def requeue(operation: Operation, *, message: str) -> bool:
    """Give a running operation back to the queue (the host was unreachable; a retry follows)."""
    return bool(
        Operation.objects.filter(pk=operation.pk, status=OperationStatus.RUNNING).update(
            status=OperationStatus.QUEUED, error=message
        )
    )
