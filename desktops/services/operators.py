"""Figures for the operators' admin front page: desktops by state, tenants, recent failures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from desktops.choices import TRANSITIONAL_STATES, DesktopState, OperationStatus
from desktops.models import Desktop, Operation
from hosts.services.overview import Fleet, fleet
from tenants.choices import TenantStatus
from tenants.models import Tenant

FAILURES_SINCE = timedelta(hours=24)


@dataclass(frozen=True)
class OperatorOverview:
    fleet: Fleet
    running: int
    changing: int
    errors: int
    tenants_active: int
    tenants_suspended: int
    failed_operations: int


def overview() -> OperatorOverview:
    """Everything the admin's front page shows above the model list (all tenants: operators only)."""
    states = dict(
        Desktop.objects.exclude(state=DesktopState.DELETED)
        .order_by()
        .values("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    tenants = dict(Tenant.objects.order_by().values("status").annotate(n=Count("id")).values_list("status", "n"))
    since = timezone.now() - FAILURES_SINCE
    return OperatorOverview(
        fleet=fleet(),
        running=states.get(DesktopState.RUNNING, 0),
        changing=sum(states.get(state, 0) for state in TRANSITIONAL_STATES),
        errors=states.get(DesktopState.ERROR, 0),
        tenants_active=tenants.get(TenantStatus.ACTIVE, 0),
        tenants_suspended=sum(n for status, n in tenants.items() if status != TenantStatus.ACTIVE),
        failed_operations=Operation.objects.filter(status=OperationStatus.FAILED, finished_at__gte=since).count(),
    )
