"""Disposable desktops: N at once from a template, labelled, with a time to live; deleted when it runs out.

Each one is an ordinary personal desktop made by `request_create` (so the tenant's quotas, checked under the
tenant's row lock, bound how many exist and run); the whole batch is one transaction, so a batch the quotas
cannot hold is refused whole and nothing is queued. The beat's reconcile round deletes expired ones.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from desktops.choices import DesktopState, OperationKind
from desktops.models import Desktop, DesktopLabel, DesktopTemplate, Operation
from desktops.models.desktop import DesktopQuerySet
from desktops.services.requests import request_action, request_create
from quetzal.errors import ServiceError
from tenants.models import Tenant, User

log = logging.getLogger(__name__)

MAX_COUNT = 50
MAX_TTL_MINUTES = 7 * 24 * 60
MAX_LABELS = 8
MAX_WAIT_S = 600
LABEL_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?\Z"
# Waiting for a batch: how often the rows are read again.
_POLL_S = 0.5


def create(
    *,
    tenant: Tenant,
    user: User,
    template: DesktopTemplate,
    count: int,
    ttl_minutes: int,
    labels: Sequence[str] = (),
    actor: User | None = None,
    ip: str | None = None,
) -> list[tuple[Desktop, Operation]]:
    """`count` running desktops of `template` for `user`, each deleted `ttl_minutes` after now."""
    if not 1 <= count <= MAX_COUNT:
        raise ServiceError(
            gettext("Make 1 to %(MAX_COUNT)s disposable desktops at a time.") % {"MAX_COUNT": MAX_COUNT},
            code="invalid_count",
        )
    if not 1 <= ttl_minutes <= MAX_TTL_MINUTES:
        raise ServiceError(
            gettext("ttl_minutes is 1 to %(MAX_TTL_MINUTES)s.") % {"MAX_TTL_MINUTES": MAX_TTL_MINUTES},
            code="invalid_ttl",
        )
    labels = list(dict.fromkeys(labels))
    if len(labels) > MAX_LABELS or any(not re.fullmatch(LABEL_PATTERN, label) for label in labels):
        raise ServiceError(
            gettext("Up to %(MAX_LABELS)s labels of lower-case letters, digits, '.', '_' and '-'.")
            % {"MAX_LABELS": MAX_LABELS},
            code="invalid_label",
        )
    expires_at = timezone.now() + timedelta(minutes=ttl_minutes)
    made: list[tuple[Desktop, Operation]] = []
    name = labels[0] if labels else "disposable"
    with transaction.atomic():
        for n in range(1, count + 1):
            desktop, operation = request_create(
                tenant=tenant, user=user, template=template, actor=actor or user, name=f"{name}-{n}", ip=ip
            )
            Desktop.objects.filter(pk=desktop.pk).update(expires_at=expires_at)
            desktop.expires_at = expires_at
            DesktopLabel.objects.bulk_create(
                [DesktopLabel(tenant=desktop.tenant, desktop=desktop, value=label) for label in labels]
            )
            made.append((desktop, operation))
    return made


def labelled(queryset: DesktopQuerySet, label: str) -> DesktopQuerySet:
    """The alive desktops of queryset that carry the label."""
    return queryset.alive().filter(labels__value=label).distinct()


def wait_ready(desktops: Sequence[Desktop], timeout_s: float) -> list[Desktop]:
    """Wait until each desktop runs or has failed (bounded); the desktops as they are then."""
    ids = [d.pk for d in desktops]
    deadline = time.monotonic() + min(timeout_s, MAX_WAIT_S)
    while True:
        rows = list(Desktop.objects.filter(pk__in=ids).select_related("template", "user", "host"))
        settled = all(d.state in (DesktopState.RUNNING, DesktopState.ERROR, DesktopState.DELETED) for d in rows)
        if settled or time.monotonic() >= deadline:
            return sorted(rows, key=lambda d: ids.index(d.pk))
        time.sleep(_POLL_S)


def tear_down(*, desktops: QuerySet, actor: User | None, ip: str | None = None) -> list[Operation]:
    """Ask for the deletion of each desktop (one being deleted already is left to its operation)."""
    operations = []
    for desktop in desktops:
        if desktop.state in (DesktopState.DELETING, DesktopState.DELETED):
            continue
        try:
            operations.append(request_action(desktop=desktop, kind=OperationKind.DELETE, actor=actor, ip=ip))
        except ServiceError as error:
            # Another operation holds it (a start still running): the next round, or the caller, tries again.
            log.info("disposable desktop %s not torn down now: %s", desktop.pk, error.detail)
    return operations


def expire_due(now: datetime | None = None) -> int:
    """Beat: delete the disposable desktops whose time to live ran out; how many deletions were asked."""
    due = Desktop.objects.alive().filter(expires_at__lte=now or timezone.now()).select_related("tenant")
    return len(tear_down(desktops=due, actor=None))
