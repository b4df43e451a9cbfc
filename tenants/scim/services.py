"""A tenant's provisioning connection: its bearer token, its group → role mapping, and what access follows from both.

The people and groups themselves are written by tenants.scim.provisioning; what their writes do to memberships
(join, role, suspension) is decided here, in one place.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from quetzal.errors import Conflict, FieldErrors, Forbidden
from tenants import channels, events, signals
from tenants.choices import Role
from tenants.models import Membership, Tenant, User
from tenants.receivers import ROLE_RANK
from tenants.resolution import SESSION_KEY
from tenants.scim.models import ScimDirectory, ScimUser

TOKEN_PREFIX = "qzscim_"
# Its last use is written at most this often (an Entra ID sync cycle sends many requests a second).
LAST_USED_EVERY_S = 60


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def directory_of(tenant: Tenant) -> ScimDirectory:
    """The tenant's provisioning connection, made on first use (at most one per tenant: a unique constraint)."""
    directory, _ = ScimDirectory.objects.get_or_create(tenant=tenant)
    return directory


def _is_owner(tenant: Tenant, actor: User) -> bool:
    return Membership.objects.for_tenant(tenant).filter(user=actor, role=Role.OWNER).exists()


def _owner_groups(mapping: Mapping[str, str]) -> set[str]:
    return {group for group, role in mapping.items() if role == Role.OWNER}


def issue_token(*, tenant: Tenant, actor: User, ip: str | None = None) -> tuple[ScimDirectory, str]:
    """A new bearer token for the tenant's directory (the previous one stops working); the secret is returned once.

    While a group gives ownership, only an owner makes the token: whoever holds it can put anyone in that group,
    and an admin may not make owners (tenants.services.members).
    """
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        directory = ScimDirectory.objects.select_for_update().get(pk=directory_of(tenant).pk)
        if _owner_groups(directory.role_names()) and not _is_owner(tenant, actor):
            raise Forbidden(
                gettext("A group gives ownership here: only an owner can make the provisioning token."),
                code="owner_required",
            )
        directory.token_hash = hash_token(raw)
        directory.token_prefix = raw[: len(TOKEN_PREFIX) + 6]
        directory.token_created_at = timezone.now()
        directory.token_created_by = actor
        directory.last_used_at = None
        directory.save()
        events.scim_token_created(actor=actor, directory=directory, ip=ip)
    return directory, raw


def revoke_token(*, tenant: Tenant, actor: User, ip: str | None = None) -> ScimDirectory:
    with transaction.atomic():
        directory = ScimDirectory.objects.select_for_update().get(pk=directory_of(tenant).pk)
        if not directory.has_token:
            raise Conflict(gettext("There is no provisioning token to revoke."), code="scim_no_token")
        directory.token_hash = ""
        directory.save(update_fields=["token_hash"])
        events.scim_token_revoked(actor=actor, directory=directory, ip=ip)
    return directory


def authenticate(raw: str) -> ScimDirectory | None:
    """The directory whose token this is, marking its last use (at most once a minute)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    directory = ScimDirectory.objects.select_related("tenant").filter(token_hash=hash_token(raw)).first()
    if directory is None:
        return None
    now = timezone.now()
    if directory.last_used_at is None or (now - directory.last_used_at).total_seconds() > LAST_USED_EVERY_S:
        ScimDirectory.objects.filter(pk=directory.pk).update(last_used_at=now)
    return directory


def parse_mapping(text: str) -> dict[str, str]:
    """ "Group = role" lines (the admin's form) as a mapping; raises FieldErrors naming the bad line."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        group, sep, role = line.rpartition("=")
        group, role = group.strip(), role.strip().lower()
        if not sep or not group or role not in Role.values:
            raise FieldErrors(
                {
                    "group_roles": gettext("Line %(number)s: write it as Group name = owner, admin or member.")
                    % {"number": number}
                }
            )
        mapping[group[:254]] = role
    return mapping


def save_mapping(
    *, tenant: Tenant, actor: User, group_roles: Mapping[str, str], ip: str | None = None
) -> ScimDirectory:
    """Set which directory groups give which role, and give every provisioned person the role it gives them now."""
    with transaction.atomic():
        directory = ScimDirectory.objects.select_for_update().get(pk=directory_of(tenant).pk)
        wanted = {str(g): r for g, r in group_roles.items() if r in Role.values}
        if _owner_groups(wanted) != _owner_groups(directory.role_names()) and not _is_owner(tenant, actor):
            raise Forbidden(gettext("Only an owner can choose which groups give ownership."), code="owner_required")
        directory.group_roles = wanted
        directory.save(update_fields=["group_roles"])
        events.scim_mapping_changed(actor=actor, directory=directory, ip=ip)
        for person in ScimUser.objects.for_tenant(tenant).filter(active=True).select_related("user", "tenant"):
            sync_access(person, directory=directory)
    return directory


# ------------------------------------------------------------------------ what a person's record gives them


def role_for(directory: ScimDirectory, groups: list[str]) -> str:
    """The highest role the person's groups map to; a person in no mapped group is a member (the directory assigned
    them to Quetzal, which is what provisioning them means)."""
    mapping = directory.role_names()
    roles = [mapping[group] for group in groups if group in mapping]
    return max(roles, key=lambda role: ROLE_RANK[Role(role)]) if roles else Role.MEMBER


def _is_last_owner(membership: Membership) -> bool:
    if membership.role != Role.OWNER:
        return False
    owners = Membership.objects.select_for_update().filter(tenant_id=membership.tenant_id, role=Role.OWNER)
    return list(owners.values_list("pk", flat=True)) == [membership.pk]


def sync_access(person: ScimUser, *, directory: ScimDirectory | None = None, ip: str | None = None) -> str | None:
    """Make the person's membership what their record says: none when inactive, else the role their groups give.

    Callers hold the transaction. The last owner of a tenant is never demoted or removed by the directory (a tenant
    without an owner cannot be managed); that is refused before the record is written (see ensure_keeps_owner).
    Returns the role the person has now, or None.
    """
    directory = directory or directory_of(person.tenant)
    membership = Membership.objects.select_for_update().filter(tenant_id=person.tenant_id, user=person.user).first()
    if not person.active:
        if membership is not None and not _is_last_owner(membership):
            membership.delete()  # its post_delete receiver ends the person's sockets in this tenant
            signals.announce_leave(
                tenant_id=person.tenant_id, user_id=person.user_id, actor_id=None, delete_desktops=False
            )
        return None
    groups = list(person.groups.values_list("display_name", flat=True))
    role = role_for(directory, groups)
    if membership is None:
        membership = Membership.objects.create(tenant=person.tenant, user=person.user, role=role)
        signals.announce_join(membership.pk, via="scim")
        return role
    if membership.role != role and not (_is_last_owner(membership) and role != Role.OWNER):
        previous = membership.role
        membership.role = role
        membership.save(update_fields=["role"])  # a downgrade ends the sockets (tenants.receivers)
        events.scim_member_role_changed(membership=membership, previous=previous, ip=ip)
    return membership.role


def ensure_keeps_owner(person: ScimUser) -> None:
    """Refuse to deactivate or remove the tenant's last owner (409): someone must still manage the tenant."""
    membership = Membership.objects.select_for_update().filter(tenant_id=person.tenant_id, user=person.user).first()
    if membership is not None and _is_last_owner(membership):
        raise Conflict(
            gettext("%(email)s is the organisation's last owner: make someone else owner first.")
            % {"email": person.user.email},
            code="last_owner",
        )


def end_sessions(person: ScimUser) -> int:
    """Sign the person out of the browser sessions that act in this tenant (or in none chosen yet); how many.

    Their sessions in their other organisations stay: this tenant's directory decides only about this tenant.
    """
    ended: list[str] = []
    user_id = str(person.user_id)
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        data = session.get_decoded()
        if data.get("_auth_user_id") == user_id and data.get(SESSION_KEY) in (None, person.tenant_id):
            ended.append(session.session_key)
    Session.objects.filter(session_key__in=ended).delete()
    # The sockets those sessions opened close as signed out (after commit), as a sign-out page would close them.
    channels.end_sockets([channels.session_group(key) for key in ended], code=channels.SIGNED_OUT, reason="deactivated")
    return len(ended)
