"""Tenant and per-person limits, checked before any work is queued."""

from __future__ import annotations

from django.db.models import Sum

from desktops.choices import ACTIVE_STATES, DesktopKind
from desktops.models import Desktop, DesktopTemplate
from quetzal.errors import Forbidden, LimitExceeded
from tenants.models import Tenant


def ensure_tenant_active(tenant: Tenant) -> None:
    """A suspended tenant cannot start anything."""
    if not tenant.is_active:
        raise Forbidden(
            f"{tenant.name} is suspended: desktops cannot be started until it is reactivated.",
            code="tenant_suspended",
        )


def ensure_can_create(*, tenant: Tenant, template: DesktopTemplate) -> None:
    """The tenant's desktop-count quota."""
    if tenant.quota_desktops:
        count = Desktop.objects.for_tenant(tenant).alive().filter(kind=DesktopKind.PERSONAL).count()
        if count >= tenant.quota_desktops:
            raise LimitExceeded(
                f"Your organisation's limit of {tenant.quota_desktops} desktops is reached.", code="quota_desktops"
            )


def ensure_can_run(*, tenant: Tenant, user, vcpus: int, memory_mib: int, exclude_desktop_id: int | None = None) -> None:
    """The tenant's vCPU and RAM quotas over running desktops, and the person's running limit."""
    running = Desktop.objects.for_tenant(tenant).filter(state__in=ACTIVE_STATES)
    if exclude_desktop_id is not None:
        running = running.exclude(pk=exclude_desktop_id)
    if user is not None and tenant.max_running_per_user:
        mine = running.filter(user=user).count()
        if mine >= tenant.max_running_per_user:
            raise LimitExceeded(
                f"You may run {tenant.max_running_per_user} desktop(s) at once; stop one first.",
                code="limit_running_per_user",
            )
    if tenant.quota_vcpus or tenant.quota_ram_mib:
        used = running.aggregate(vcpus=Sum("vcpus"), memory=Sum("memory_mib"))
        if tenant.quota_vcpus and (used["vcpus"] or 0) + vcpus > tenant.quota_vcpus:
            raise LimitExceeded(
                f"Your organisation's limit of {tenant.quota_vcpus} running vCPUs would be exceeded.",
                code="quota_vcpus",
            )
        if tenant.quota_ram_mib and (used["memory"] or 0) + memory_mib > tenant.quota_ram_mib:
            raise LimitExceeded(
                f"Your organisation's limit of {tenant.quota_ram_mib} MiB of running RAM would be exceeded.",
                code="quota_ram",
            )
