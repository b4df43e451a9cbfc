"""Moving running desktops between hosts (live migration): one desktop on request, or a whole host to drain it."""

from __future__ import annotations

import contextlib

from django.db import transaction
from django.utils.translation import gettext

from desktops.choices import DesktopState, OperationKind
from desktops.models import Desktop, Operation
from desktops.services.requests import _new_operation
from hosts.models import Host
from quetzal.errors import Conflict, ServiceError
from tenants import events


def request_move(*, desktop: Desktop, actor, host: Host | None = None) -> Operation:
    """Queue a live migration of a running desktop, to `host` or to the scheduler's best other host."""
    with transaction.atomic():
        desktop.refresh_from_db()
        if desktop.state != DesktopState.RUNNING:
            raise Conflict(
                gettext("Only a running desktop can be moved; %(name)s is %(lower)s.")
                % {"name": desktop.name, "lower": desktop.get_state_display().lower()},
                code="invalid_state",
            )
        if host is not None and host.pk == desktop.host_id:
            raise ServiceError(
                gettext("%(name)s is on %(name2)s already.") % {"name": desktop.name, "name2": host.name},
                code="same_host",
            )
        params = {"host_id": host.pk} if host is not None else {}
        operation = _new_operation(desktop=desktop, kind=OperationKind.MIGRATE, actor=actor, params=params)
        events.desktop_action(kind=OperationKind.MIGRATE, actor=actor, desktop=desktop, params=params, ip=None)
    return operation


def evacuate(*, host: Host, actor) -> list[Operation]:
    """Queue a move for every running desktop on the host (drain it without stopping anyone)."""
    operations = []
    for desktop in Desktop.objects.filter(host=host, state=DesktopState.RUNNING):
        # A desktop busy with another operation is left for the next pass of the drain.
        with contextlib.suppress(ServiceError):
            operations.append(request_move(desktop=desktop, actor=actor))
    return operations
