"""Tenant admins' bulk actions: snapshot every desktop, stop every idle one (each through request_action)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from desktops.choices import DesktopKind, OperationKind
from desktops.models import Desktop, Operation
from desktops.services.dashboard import idle_desktops
from desktops.services.requests import request_action, request_stop
from desktops.state import can_request
from quetzal.errors import ServiceError
from tenants import events
from tenants.models import Tenant


@dataclass
class BulkResult:
    queued: list[Operation] = field(default_factory=list)
    skipped: list[tuple[Desktop, str]] = field(default_factory=list)

    def summary(self, verb: str) -> str:
        text = f"{verb} queued for {len(self.queued)} desktop{'s' if len(self.queued) != 1 else ''}"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped"
        return text + "."


def snapshot_all(*, tenant: Tenant, actor, ip: str | None = None) -> BulkResult:
    """Snapshot every personal desktop that can be snapshotted now, all under one name."""
    name = timezone.now().strftime("bulk-%Y%m%d-%H%M%S")
    result = BulkResult()
    desktops = Desktop.objects.for_tenant(tenant).alive().filter(kind=DesktopKind.PERSONAL).order_by("pk")
    for desktop in desktops:
        if not can_request(OperationKind.SNAPSHOT, desktop.state):
            result.skipped.append((desktop, f"{desktop.get_state_display().lower()}"))
            continue
        try:
            result.queued.append(
                request_action(
                    desktop=desktop, kind=OperationKind.SNAPSHOT, actor=actor, params={"snapshot": name}, ip=ip
                )
            )
        except ServiceError as error:  # busy with another operation: the others still go ahead
            result.skipped.append((desktop, error.detail))
    events.bulk_snapshot_requested(
        actor=actor, tenant=tenant, snapshot=name, queued=len(result.queued), skipped=len(result.skipped), ip=ip
    )
    return result


def stop_all_idle(*, tenant: Tenant, actor, ip: str | None = None) -> BulkResult:
    """Stop every running desktop with no console open; pooled ones are recycled, as idle policy does."""
    result = BulkResult()
    reason = f"Stopped while idle by {getattr(actor, 'email', 'an admin')}"
    for item in idle_desktops(tenant):
        desktop = item.desktop
        try:
            result.queued.append(request_stop(desktop=desktop, actor=actor, reason=reason, ip=ip))
        except ServiceError as error:
            result.skipped.append((desktop, error.detail))
    events.bulk_stop_idle_requested(
        actor=actor, tenant=tenant, queued=len(result.queued), skipped=len(result.skipped), ip=ip
    )
    return result
