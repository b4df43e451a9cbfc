"""The web tier's side of the lifecycle: validate, record intent, queue work. No libvirt here."""

from __future__ import annotations

import re
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from desktops import dispatch
from desktops.choices import DesktopKind, DesktopState, OperationKind
from desktops.models import Desktop, DesktopTemplate, HomeDisk, Operation
from desktops.services import quotas, sizes
from desktops.state import ACTIONS, can_request
from quetzal.errors import Conflict, ServiceError
from tenants import events

# Why a pooled desktop its user stops is recycled, when the caller gives no reason of its own.
RELEASED = "Released by its user"


def enqueue(operation: Operation) -> None:
    """Send the operation to a worker once the transaction that created it commits, as the task it names."""
    dispatch.run_operation(operation.pk, task_id=operation.celery_task_id)


def _new_operation(*, desktop: Desktop, kind: str, actor, params: dict | None = None) -> Operation:
    """Create the operation row; the database refuses a second one in flight."""
    try:
        with transaction.atomic():
            # The Celery task id is chosen here, so the row names its task without a write after sending.
            operation = Operation.objects.create(
                tenant_id=desktop.tenant_id,
                desktop=desktop,
                kind=kind,
                actor=actor,
                params=params or {},
                celery_task_id=str(uuid.uuid4()),
            )
    except IntegrityError:
        running = Operation.objects.in_flight().filter(desktop=desktop).first()
        what = f"a {running.kind} operation" if running else "another operation"
        raise Conflict(
            gettext("%(name)s is busy with %(what)s; try again when it finishes.")
            % {"name": desktop.name, "what": what},
            code="operation_in_progress",
        )
    enqueue(operation)
    return operation


def request_create(
    *,
    tenant,
    user,
    template: DesktopTemplate,
    actor=None,
    name: str = "",
    start: bool = True,
    size: sizes.Size | None = None,
    ip: str | None = None,
) -> tuple[Desktop, Operation]:
    """A new personal desktop from a template (at `size`, already resolved against it; default: the template's).

    A worker places, clones, defines and (by default) boots it.
    """
    size = size or sizes.default_size(template)
    custom = size != sizes.default_size(template)
    if custom:
        sizes.ensure_may_choose(tenant=tenant, actor=actor or user, what="choose a size other than the default")
        # A size of its own needs a host with a slot that big: refuse now rather than fail in the worker.
        sizes.ensure_host_room(template=template, size=size)
    with transaction.atomic():
        # The quotas read what every earlier request of this tenant wrote: the lock makes check and create one step.
        tenant = quotas.lock(tenant)
        quotas.ensure_tenant_active(tenant)
        if not DesktopTemplate.objects.launchable_by(tenant).filter(pk=template.pk).exists():
            raise ServiceError(
                gettext("This template is not available to your organisation."), code="template_unavailable", status=404
            )
        if custom:
            quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=size.vcpus, memory_mib=size.memory_mib)
        quotas.ensure_can_create(tenant=tenant, disk_gib=size.disk_gib)
        if start:
            quotas.ensure_can_run(tenant=tenant, user=user, vcpus=size.vcpus, memory_mib=size.memory_mib)
        desktop = Desktop.objects.create(
            tenant=tenant,
            user=user,
            template=template,
            kind=DesktopKind.PERSONAL,
            name=name.strip() or template.name,
            vcpus=size.vcpus,
            memory_mib=size.memory_mib,
            disk_gib=size.disk_gib,
            size_name=size.name,
        )
        operation = _new_operation(
            desktop=desktop, kind=OperationKind.CREATE, actor=actor or user, params={"start": start}
        )
        events.desktop_created(actor=actor or user, tenant=tenant, desktop=desktop, ip=ip)
    return desktop, operation


def request_action(
    *, desktop: Desktop, kind: str, actor, params: dict | None = None, ip: str | None = None
) -> Operation:
    """Queue a lifecycle action on an existing desktop after checking state and limits."""
    if kind not in ACTIONS or not ACTIONS[kind].requestable:
        raise ServiceError(gettext("Unknown action '%(kind)s'.") % {"kind": kind}, code="invalid_action")
    with transaction.atomic():
        if kind in (OperationKind.START, OperationKind.RESUME, OperationKind.REVERT):
            # Taken before the state is read, so the state, the limits and the new operation are one step.
            quotas.ensure_tenant_active(quotas.lock(desktop.tenant))
        desktop.refresh_from_db()
        if not can_request(kind, desktop.state):
            raise Conflict(
                gettext("Cannot %(replace)s %(name)s while it is %(lower)s.")
                % {
                    "replace": OperationKind(kind).label.lower(),
                    "name": desktop.name,
                    "lower": desktop.get_state_display().lower(),
                },
                code="invalid_state",
            )
        params = dict(params or {})
        if kind in (OperationKind.SNAPSHOT, OperationKind.REVERT, OperationKind.DELETE_SNAPSHOT):
            params["snapshot"] = _snapshot_name(kind, desktop, params.get("snapshot", ""))
        if kind in (OperationKind.SNAPSHOT, OperationKind.REVERT) and _home_plugged_in(desktop):
            # A snapshot of the running VM would take the home along, and a revert roll the person's files back.
            raise Conflict(
                gettext("%(name)s has your home folder plugged in: stop it first, then snapshot or revert it.")
                % {"name": desktop.name},
                code="home_plugged_in",
            )
        if kind == OperationKind.REVERT and _revert_boots(desktop, params["snapshot"]):
            # Reverting a stopped desktop to a snapshot of it running starts it: the same limits apply.
            params["boots"] = True
        if kind == OperationKind.START or params.get("boots"):
            quotas.ensure_can_run(
                tenant=desktop.tenant,
                user=desktop.user,
                vcpus=desktop.vcpus,
                memory_mib=desktop.memory_mib,
                exclude_desktop_id=desktop.pk,
            )
        operation = _new_operation(desktop=desktop, kind=kind, actor=actor, params=params)
        events.desktop_action(kind=kind, actor=actor, desktop=desktop, params=params, ip=ip)
    return operation


def recycle(*, desktop: Desktop, actor=None, reason: str = "Returned to the pool", ip: str | None = None) -> Operation:
    """A used pooled desktop is destroyed so the next person gets a clean one; refill replaces it."""
    if desktop.kind != DesktopKind.POOLED:
        raise ServiceError(gettext("Only pooled desktops are recycled."), code="not_pooled")
    return request_action(desktop=desktop, kind=OperationKind.DELETE, actor=actor, params={"reason": reason}, ip=ip)


def request_stop(*, desktop: Desktop, actor, reason: str = "", ip: str | None = None) -> Operation:
    """Stop a desktop; a pooled one is never stopped for reuse but recycled, so the next person gets a clean one."""
    if desktop.kind == DesktopKind.POOLED:
        return recycle(desktop=desktop, actor=actor, reason=reason or RELEASED, ip=ip)
    params = {"reason": reason} if reason else None
    return request_action(desktop=desktop, kind=OperationKind.STOP, actor=actor, params=params, ip=ip)


def _home_plugged_in(desktop: Desktop) -> bool:
    """Whether a home disk is plugged into the desktop's running VM (a stopped one has let go of it)."""
    return desktop.state != DesktopState.STOPPED and HomeDisk.objects.filter(attached_to=desktop).exists()


def _revert_boots(desktop: Desktop, snapshot: str) -> bool:
    """Whether reverting the desktop to `snapshot` would bring it up (stopped now, running in the snapshot)."""
    return desktop.state == DesktopState.STOPPED and desktop.snapshots.filter(name=snapshot, running=True).exists()


def _snapshot_name(kind: str, desktop: Desktop, name: str) -> str:
    """Validate a snapshot name: made of safe characters; must exist unless it is being created."""
    name = (name or "").strip()
    if kind == OperationKind.SNAPSHOT and not name:
        name = timezone.now().strftime("snap-%Y%m%d-%H%M%S")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise ServiceError(
            gettext("Snapshot names use letters, digits, '.', '_' and '-' (up to 64)."), code="invalid_snapshot"
        )
    exists = desktop.snapshots.filter(name=name).exists()
    if kind == OperationKind.SNAPSHOT and exists:
        raise Conflict(gettext("A snapshot named %(name)s already exists.") % {"name": name}, code="snapshot_exists")
    if kind != OperationKind.SNAPSHOT and not exists:
        raise ServiceError(
            gettext("No snapshot named %(name)s.") % {"name": name}, code="snapshot_not_found", status=404
        )
    return name
