"""A desktop for every new member: the tenant's policy, and the desktop made when someone joins."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from desktops.choices import DesktopKind, OperationKind
from desktops.models import Desktop, DesktopTemplate, NewMemberDesktop
from desktops.services import requests
from quetzal.errors import ServiceError
from tenants import events
from tenants.models import Membership, Tenant, User

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 500


def policy_of(tenant: Tenant) -> NewMemberDesktop | None:
    return NewMemberDesktop.objects.for_tenant(tenant).select_related("template").first()


def set_policy(
    *, tenant: Tenant, actor: User, template: DesktopTemplate | None, enabled: bool, ip: str | None = None
) -> NewMemberDesktop | None:
    """Give new members a desktop of `template` (None: no longer); the form scoped it to launchable templates."""
    with transaction.atomic():
        current = NewMemberDesktop.objects.for_tenant(tenant).select_for_update().first()
        before = {"template": current.template_id if current else None, "enabled": bool(current and current.enabled)}
        if template is None:
            if current is not None:
                current.delete()
            current = None
        elif current is None:
            current = NewMemberDesktop.objects.create(tenant=tenant, template=template, enabled=enabled)
        else:
            current.template, current.enabled = template, enabled
            current.save(update_fields=["template", "enabled"])
        after = {"template": template.pk if template else None, "enabled": bool(current and current.enabled)}
        if before != after:
            events.tenant_policies_changed(
                actor=actor,
                tenant=tenant,
                before={"new_member_desktop": before},
                after={"new_member_desktop": after},
                ip=ip,
            )
    return current


def provision(*, membership_id: int) -> Desktop | None:
    """The new member's desktop, when the tenant's policy asks for one and they have none of it yet."""
    membership = Membership.objects.select_related("tenant", "user").filter(pk=membership_id).first()
    if membership is None:
        return None  # gone again before this ran
    policy = policy_of(membership.tenant)
    if policy is None or not policy.enabled:
        return None
    mine = Desktop.objects.for_tenant(membership.tenant).alive().filter(user=membership.user, kind=DesktopKind.PERSONAL)
    if mine.filter(template=policy.template).exists():
        return None  # joined before (or this ran twice): one is enough
    try:
        desktop, _ = requests.request_create(
            tenant=membership.tenant, user=membership.user, template=policy.template, start=False
        )
    except ServiceError as refusal:
        NewMemberDesktop.objects.filter(pk=policy.pk).update(
            last_error=f"{membership.user.email}: {refusal.detail}"[:MAX_ERROR_CHARS], last_error_at=timezone.now()
        )
        log.info("no desktop for new member %s: %s", membership.user.email, refusal.detail)
        return None
    return desktop


def delete_desktops_of(*, tenant_id: int, user_id: int, actor_id: int | None) -> int:
    """Queue the deletion of a removed member's personal desktops in the tenant (the admin asked); how many."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    desktops = Desktop.objects.for_tenant(tenant).alive().filter(user_id=user_id, kind=DesktopKind.PERSONAL)
    queued = 0
    for desktop in desktops.order_by("pk"):
        try:
            requests.request_action(desktop=desktop, kind=OperationKind.DELETE, actor=actor)
        except ServiceError as refusal:  # busy, or already going: the reconcile loop and the admin see it
            log.info("desktop %s of a removed member not deleted: %s", desktop.pk, refusal.detail)
        else:
            queued += 1
    return queued
