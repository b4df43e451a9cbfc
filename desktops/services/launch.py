"""“Launch Ubuntu”: resume the person's desktop, or hand them a warm one, or make a new one."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext

from desktops.choices import DesktopState, LaunchKind, OperationKind
from desktops.models import Desktop, DesktopTemplate, Operation
from desktops.services import pools, quotas, readiness, sizes, warm_claim
from desktops.services.requests import request_action, request_create
from desktops.state import can_request
from quetzal.errors import Conflict

# The actions that bring a person's existing desktop back; the lifecycle table says which fits its state.
_RESUME_WITH = (OperationKind.START, OperationKind.RESUME)


@dataclass(frozen=True)
class LaunchResult:
    desktop: Desktop
    operation: Operation | None
    # Set when the warm claim's one statement (desktops.services.warm_claim) read all the answer shows: the
    # desktop carries its host, labels and snapshots, this its network address; the API reads nothing again.
    claimed: warm_claim.Claimed | None = None

    @property
    def ready(self) -> bool:
        return self.desktop.state == DesktopState.RUNNING and self.operation is None


def launch(
    *, tenant, user, template: DesktopTemplate, size: sizes.Size | None = None, ip: str | None = None
) -> LaunchResult:
    """Next login, same desktop, files preserved; else a warm pooled one; else a new one.

    One desktop per person and template: simultaneous launches by one person all answer with the same one.
    `size` (resolved against the template) is for a new desktop; an existing one keeps its own size, and
    asking for another one is refused (resize it instead). Pools hand out only the template's default size.
    """
    default = sizes.default_size(template)
    with transaction.atomic():
        # Launches of the tenant take turns from here, so the look for the person's desktop and the claim or
        # create that follows are one step: a second launch finds the desktop the first one made.
        locked = quotas.lock(tenant)
        if size is None or size == default:
            # The storm's common case in one statement (it claims only for a person with no desktop of the
            # template yet); anything else it leaves to the steps below, which decide as before.
            claimed = warm_claim.claim(locked=locked, user=user, template=template, ip=ip)
            if claimed is not None:
                return LaunchResult(claimed.desktop, claimed.operation, claimed)
        existing = _latest(tenant=tenant, user=user, template=template)
        if existing is not None:
            _ensure_same_size(existing, size)
            result = _as_it_is(existing)
            if result is not None:
                return result
            kind = next((kind for kind in _RESUME_WITH if can_request(kind, existing.state)), None)
            if kind is not None:
                operation = request_action(desktop=existing, kind=kind, actor=user, ip=ip)
                readiness.record_launch(desktop=existing, kind=LaunchKind.COLD)
                return LaunchResult(existing, operation)
        if size is None or size == default:
            claimed_step_by_step = pools.claim_locked(locked=locked, user=user, template=template, ip=ip)
            if claimed_step_by_step is not None:
                readiness.record_launch(desktop=claimed_step_by_step[0], kind=LaunchKind.WARM)
                return LaunchResult(*claimed_step_by_step)
        desktop, operation = request_create(tenant=tenant, user=user, template=template, actor=user, size=size, ip=ip)
        readiness.record_launch(desktop=desktop, kind=LaunchKind.COLD)
        return LaunchResult(desktop, operation)


def _ensure_same_size(desktop: Desktop, size: sizes.Size | None) -> None:
    """A launch that names a size the person's desktop does not have would silently hand back the old one."""
    if size is None:
        return
    current = sizes.of_desktop(desktop)
    if (current.vcpus, current.memory_mib, current.disk_gib) != (size.vcpus, size.memory_mib, size.disk_gib):
        raise Conflict(
            gettext("You already have %(name)s at %(label)s; resize it rather than launch another size.")
            % {"name": desktop.name, "label": current.label},
            code="size_differs",
        )


def _latest(*, tenant, user, template: DesktopTemplate) -> Desktop | None:
    """The person's newest desktop of this template that is not deleted."""
    return (
        Desktop.objects.for_tenant(tenant)
        .alive()
        .owned_by(user)
        .filter(template=template)
        .order_by("-created_at", "-id")
        .first()
    )


def _as_it_is(desktop: Desktop) -> LaunchResult | None:
    """The answer when the desktop needs nothing new: running, or already on its way with an operation."""
    # The home's hot-plug after a claim is not what a launch waits for: the desktop is running already.
    in_flight = desktop.operations.in_flight().exclude(kind=OperationKind.ATTACH_HOME).first()
    if in_flight is not None or desktop.state == DesktopState.RUNNING:
        return LaunchResult(desktop, in_flight)
    return None
