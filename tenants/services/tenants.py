"""Creating tenants and changing their policies."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from django.utils.translation import gettext

from quetzal.errors import Conflict, ServiceError
from tenants import events
from tenants.choices import Role, TenantStatus
from tenants.models import Membership, Tenant
from tenants.models.tenant import POLICY_FIELDS
from tenants.receivers import end_tenant_sockets


def create_tenant(*, name: str, owner, slug: str | None = None, pending: bool = False, ip: str | None = None) -> Tenant:
    """Create a tenant with its first owner; a pending one (self-service) waits for an operator's approval.

    A pending tenant also starts with the operator's small starter quotas (SIGNUP_QUOTAS), not "no limit".
    """
    slug = slugify(slug or name)[:50]
    if not slug:
        raise ServiceError(gettext("The organisation needs a name made of letters or digits."), code="invalid_name")
    status = TenantStatus.PENDING if pending else TenantStatus.ACTIVE
    quotas = dict(settings.SIGNUP_QUOTAS) if pending else {}
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(name=name.strip(), slug=slug, status=status, **quotas)
            Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
            events.tenant_created(actor=owner, tenant=tenant, ip=ip)
    except IntegrityError:
        raise Conflict(
            gettext("The address '%(slug)s' is taken; choose another.") % {"slug": slug}, code="slug_taken"
        ) from None
    return tenant


def update_policies(*, tenant: Tenant, changes: dict[str, Any], actor, ip: str | None = None) -> Tenant:
    """Change a tenant's policies and quotas, recording old and new values."""
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ServiceError(
            gettext("Unknown policy: %(join)s.") % {"join": ", ".join(sorted(unknown))}, code="unknown_policy"
        )
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        before = {field: getattr(tenant, field) for field in changes}
        for field, value in changes.items():
            setattr(tenant, field, value)
        tenant.full_clean()
        tenant.save(update_fields=list(changes))
        events.tenant_policies_changed(actor=actor, tenant=tenant, before=before, after=changes, ip=ip)
    return tenant


def set_status(*, tenant: Tenant, status: TenantStatus, actor=None, reason: str = "") -> Tenant:
    """Suspend or reactivate a tenant (operators and billing use this)."""
    with transaction.atomic():
        updated = Tenant.objects.filter(pk=tenant.pk).exclude(status=status).update(status=status)
        if updated:
            events.tenant_status_changed(actor=actor, tenant=tenant, status=status, reason=reason)
            if status != TenantStatus.ACTIVE:
                # A guarded UPDATE sends no post_save: end the sockets the way the receiver does for a save.
                end_tenant_sockets(tenant.pk, status)
    tenant.refresh_from_db()
    return tenant


def approve(*, tenant: Tenant, actor, ip: str | None = None) -> bool:
    """An operator lets a self-service tenant start (pending -> active); False when it was not pending."""
    with transaction.atomic():
        won = Tenant.objects.filter(pk=tenant.pk, status=TenantStatus.PENDING).update(status=TenantStatus.ACTIVE)
        if won:
            events.tenant_approved(actor=actor, tenant=tenant, ip=ip)
    tenant.refresh_from_db()
    return bool(won)
