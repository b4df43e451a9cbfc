"""Changing roles and removing people, keeping at least one owner."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext

from quetzal.errors import Conflict, Forbidden, NotFound, ServiceError
from tenants import events, signals
from tenants.choices import Role
from tenants.models import Membership
from tenants.receivers import ROLE_RANK, end_member_sockets


def _lock_owners(tenant_id: int) -> list[int]:
    """Lock the tenant's owner rows so two demotions can't both pass the last-owner check."""
    return list(
        Membership.objects.select_for_update().filter(tenant_id=tenant_id, role=Role.OWNER).values_list("id", flat=True)
    )


def _ensure_same_tenant(membership: Membership, actor_membership: Membership) -> None:
    """Callers resolve the membership in the actor's tenant; re-checked so no path can act on another's."""
    if membership.tenant_id != actor_membership.tenant_id:
        raise NotFound(gettext("No such person in your organisation."))


def change_role(
    *, membership: Membership, role: str, actor_membership: Membership, ip: str | None = None
) -> Membership:
    """Give a member another role; only owners grant or take away ownership."""
    _ensure_same_tenant(membership, actor_membership)
    if role not in Role.values:
        raise ServiceError(gettext("Unknown role '%(role)s'.") % {"role": role}, code="invalid_role")
    touches_owner = role == Role.OWNER or membership.role == Role.OWNER
    if touches_owner and actor_membership.role != Role.OWNER:
        raise Forbidden(gettext("Only an owner can grant or remove ownership."), code="owner_required")
    with transaction.atomic():
        owners = _lock_owners(membership.tenant_id)
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        if membership.role == Role.OWNER and role != Role.OWNER and owners == [membership.pk]:
            raise Conflict(
                gettext("A tenant needs at least one owner; make someone else owner first."), code="last_owner"
            )
        old = membership.role
        Membership.objects.filter(pk=membership.pk).update(role=role)
        membership.role = role
        if ROLE_RANK[Role(role)] < ROLE_RANK[Role(old)]:
            # A guarded UPDATE sends no post_save: end the sockets the way the receiver does for a save.
            end_member_sockets(membership, "role_downgraded")
        events.member_role_changed(actor=actor_membership.user, membership=membership, previous=old, role=role, ip=ip)
    return membership


def remove_member(
    *, membership: Membership, actor_membership: Membership, delete_desktops: bool = False, ip: str | None = None
) -> None:
    """Remove someone from the tenant (or leave it yourself); the last owner cannot go.

    `delete_desktops`: their desktops in the tenant go too (desktops hears of it after commit); else they are kept.
    """
    _ensure_same_tenant(membership, actor_membership)
    leaving_self = membership.user_id == actor_membership.user_id
    if not leaving_self and not actor_membership.is_admin:
        raise Forbidden(gettext("Only tenant admins can remove people."), code="admin_required")
    if membership.role == Role.OWNER and not leaving_self and actor_membership.role != Role.OWNER:
        raise Forbidden(gettext("Only an owner can remove an owner."), code="owner_required")
    with transaction.atomic():
        owners = _lock_owners(membership.tenant_id)
        if membership.role == Role.OWNER and owners == [membership.pk]:
            raise Conflict(gettext("The last owner cannot leave; make someone else owner first."), code="last_owner")
        events.member_removed(actor=actor_membership.user, membership=membership, leaving=leaving_self, ip=ip)
        membership.delete()  # its post_delete receiver ends the person's sockets in this tenant
        signals.announce_leave(
            tenant_id=membership.tenant_id,
            user_id=membership.user_id,
            actor_id=actor_membership.user_id,
            delete_desktops=delete_desktops,
        )
