"""“Launch Ubuntu”: resume the person's desktop, or hand them a warm one, or make a new one."""

from __future__ import annotations

from dataclasses import dataclass

from desktops.choices import DesktopState, OperationKind
from desktops.models import Desktop, DesktopTemplate, Operation
from desktops.services import pools
from desktops.services.requests import request_action, request_create
from desktops.state import can_request

# The actions that bring a person's existing desktop back; the lifecycle table says which fits its state.
_RESUME_WITH = (OperationKind.START, OperationKind.RESUME)


@dataclass(frozen=True)
class LaunchResult:
    desktop: Desktop
    operation: Operation | None

    @property
    def ready(self) -> bool:
        return self.desktop.state == DesktopState.RUNNING and self.operation is None


def launch(*, tenant, user, template: DesktopTemplate, ip: str | None = None) -> LaunchResult:
    """Next login, same desktop, files preserved; else a warm pooled one; else a new one."""
    existing = (
        Desktop.objects.for_tenant(tenant)
        .alive()
        .owned_by(user)
        .filter(template=template)
        .order_by("-created_at")
        .first()
    )
    if existing is not None:
        in_flight = existing.operations.in_flight().first()
        if in_flight is not None or existing.state == DesktopState.RUNNING:
            return LaunchResult(existing, in_flight)
        kind = next((kind for kind in _RESUME_WITH if can_request(kind, existing.state)), None)
        if kind is not None:
            return LaunchResult(existing, request_action(desktop=existing, kind=kind, actor=user, ip=ip))
    claimed = pools.claim(tenant=tenant, user=user, template=template, ip=ip)
    if claimed is not None:
        return LaunchResult(*claimed)
    desktop, operation = request_create(tenant=tenant, user=user, template=template, actor=user, ip=ip)
    return LaunchResult(desktop, operation)
