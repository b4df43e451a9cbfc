"""The web tier's side of the lifecycle: validate, record intent, queue work. No libvirt here."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from desktops.choices import DesktopKind, DesktopState, OperationKind
from desktops.models import Desktop, DesktopTemplate, Operation
from desktops.services import quotas
from desktops.state import can_transition
from quetzal.errors import Conflict, ServiceError
from tenants.services import audit

# What each action needs the desktop to be in, and the state machine target it heads for.
ACTION_SOURCES: dict[str, tuple[str, ...]] = {
    OperationKind.START: (DesktopState.STOPPED, DesktopState.HIBERNATED, DesktopState.ERROR),
    OperationKind.STOP: (DesktopState.RUNNING, DesktopState.SUSPENDED),
    OperationKind.REBOOT: (DesktopState.RUNNING,),
    OperationKind.SUSPEND: (DesktopState.RUNNING,),
    OperationKind.RESUME: (DesktopState.SUSPENDED,),
    OperationKind.HIBERNATE: (DesktopState.RUNNING,),
    OperationKind.SNAPSHOT: (DesktopState.STOPPED, DesktopState.RUNNING),
    OperationKind.REVERT: (DesktopState.STOPPED, DesktopState.RUNNING),
    OperationKind.DELETE_SNAPSHOT: (DesktopState.STOPPED, DesktopState.RUNNING, DesktopState.HIBERNATED),
    OperationKind.REBUILD: (DesktopState.STOPPED, DesktopState.ERROR),
    OperationKind.DELETE: tuple(s for s in DesktopState.values if can_transition(s, DesktopState.DELETING)),
}


def enqueue(operation: Operation) -> None:
    """Send the operation to a worker once the transaction that created it commits."""
    from desktops.tasks import run_operation

    def send() -> None:
        result = run_operation.apply_async(args=[operation.pk])
        Operation.objects.filter(pk=operation.pk, celery_task_id="").update(celery_task_id=result.id or "")

    transaction.on_commit(send)


def _new_operation(*, desktop: Desktop, kind: str, actor, params: dict | None = None) -> Operation:
    """Create the operation row; the database refuses a second one in flight."""
    try:
        with transaction.atomic():
            operation = Operation.objects.create(
                tenant_id=desktop.tenant_id, desktop=desktop, kind=kind, actor=actor, params=params or {}
            )
    except IntegrityError:
        running = Operation.objects.in_flight().filter(desktop=desktop).first()
        what = f"a {running.kind} operation" if running else "another operation"
        raise Conflict(f"{desktop.name} is busy with {what}; try again when it finishes.", code="operation_in_progress")
    enqueue(operation)
    return operation


def request_create(
    *, tenant, user, template: DesktopTemplate, actor=None, name: str = "", start: bool = True, ip: str | None = None
) -> tuple[Desktop, Operation]:
    """A new personal desktop from a template; a worker places, clones, defines and (by default) boots it."""
    quotas.ensure_tenant_active(tenant)
    if not DesktopTemplate.objects.launchable_by(tenant).filter(pk=template.pk).exists():
        raise ServiceError(
            "This template is not available to your organisation.", code="template_unavailable", status=404
        )
    quotas.ensure_can_create(tenant=tenant, template=template)
    if start:
        quotas.ensure_can_run(tenant=tenant, user=user, vcpus=template.vcpus, memory_mib=template.memory_mib)
    with transaction.atomic():
        desktop = Desktop.objects.create(
            tenant=tenant,
            user=user,
            template=template,
            kind=DesktopKind.PERSONAL,
            name=name.strip() or template.name,
            vcpus=template.vcpus,
            memory_mib=template.memory_mib,
        )
        operation = _new_operation(
            desktop=desktop, kind=OperationKind.CREATE, actor=actor or user, params={"start": start}
        )
        audit.record("desktop.create", actor=actor or user, tenant=tenant, target=desktop, ip=ip)
    return desktop, operation


def request_action(
    *, desktop: Desktop, kind: str, actor, params: dict | None = None, ip: str | None = None
) -> Operation:
    """Queue a lifecycle action on an existing desktop after checking state and limits."""
    if kind not in ACTION_SOURCES:
        raise ServiceError(f"Unknown action '{kind}'.", code="invalid_action")
    desktop.refresh_from_db()
    if desktop.state not in ACTION_SOURCES[kind]:
        raise Conflict(
            f"Cannot {kind.replace('_', ' ')} {desktop.name} while it is {desktop.get_state_display().lower()}.",
            code="invalid_state",
        )
    if kind in (OperationKind.START, OperationKind.RESUME):
        quotas.ensure_tenant_active(desktop.tenant)
        if kind == OperationKind.START:
            quotas.ensure_can_run(
                tenant=desktop.tenant,
                user=desktop.user,
                vcpus=desktop.vcpus,
                memory_mib=desktop.memory_mib,
                exclude_desktop_id=desktop.pk,
            )
    params = dict(params or {})
    if kind in (OperationKind.SNAPSHOT, OperationKind.REVERT, OperationKind.DELETE_SNAPSHOT):
        params["snapshot"] = _snapshot_name(kind, desktop, params.get("snapshot", ""))
    with transaction.atomic():
        operation = _new_operation(desktop=desktop, kind=kind, actor=actor, params=params)
        audit.record(f"desktop.{kind}", actor=actor, tenant=desktop.tenant, target=desktop, ip=ip, data=params)
    return operation


def _snapshot_name(kind: str, desktop: Desktop, name: str) -> str:
    """Validate a snapshot name: made of safe characters; must exist unless it is being created."""
    import re

    from django.utils import timezone

    name = (name or "").strip()
    if kind == OperationKind.SNAPSHOT and not name:
        name = timezone.now().strftime("snap-%Y%m%d-%H%M%S")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise ServiceError("Snapshot names use letters, digits, '.', '_' and '-' (up to 64).", code="invalid_snapshot")
    exists = desktop.snapshots.filter(name=name).exists()
    if kind == OperationKind.SNAPSHOT and exists:
        raise Conflict(f"A snapshot named {name} already exists.", code="snapshot_exists")
    if kind != OperationKind.SNAPSHOT and not exists:
        raise ServiceError(f"No snapshot named {name}.", code="snapshot_not_found", status=404)
    return name
