"""The people and groups a tenant's directory provisions over SCIM: every write scoped to the token's tenant.

Each function takes the directory (the tenant the bearer token belongs to) and resolves ids only among that
tenant's rows, so another tenant's person is a 404 whatever id is sent. Uniqueness (userName, the account's
address, a group's name) is held by the database's constraints: two creates at once give one 201 and one 409.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from scim2_models import Context, Group

from quetzal.errors import ServiceError
from tenants import events
from tenants.models import Membership, User
from tenants.scim import services
from tenants.scim.models import ScimDirectory, ScimGroup, ScimGroupMember, ScimUser
from tenants.scim.protocol import (
    GROUP_FILTERS,
    USER_FILTERS,
    ScimError,
    UserResource,
    add_missing_typed_values,
    filter_lookup,
    parse,
    patch,
)

# What is kept of a resource: the directory's attributes, never ids, meta, a password or the computed groups.
_NOT_STORED = {"id", "meta", "password", "groups", "members"}


def _conflict(detail: str) -> ScimError:
    return ScimError(409, detail, "uniqueness")


def _not_found(kind: str) -> ScimError:
    return ScimError(404, f"No such {kind} in this organisation.")


def _from_service(error: ServiceError) -> ScimError:
    return ScimError(error.status, error.detail)


def _scim_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


# ------------------------------------------------------------------------ answering


def user_resource(person: ScimUser, location: str) -> dict[str, Any]:
    resource = UserResource.model_validate(person.resource or {"userName": person.user_name})
    payload = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    payload.update(
        {
            "schemas": payload.get("schemas") or [UserResource.__schema__],
            "id": str(person.scim_id),
            "userName": person.user_name,
            "meta": {
                "resourceType": "User",
                "created": person.created_at.isoformat(),
                "lastModified": person.updated_at.isoformat(),
                "location": location,
            },
        }
    )
    # active as the directory set it; a person whose active was never sent (or removed) is active, and says so
    # by leaving the attribute out (RFC 7644 §3.5.2.2: a removed attribute is unassigned).
    if "active" in (person.resource or {}) or not person.active:
        payload["active"] = person.active
    else:
        payload.pop("active", None)
    if person.external_id:
        payload["externalId"] = person.external_id
    else:
        payload.pop("externalId", None)
    groups = [{"value": str(g.scim_id), "display": g.display_name} for g in person.groups.all()]
    if groups:
        payload["groups"] = groups
    return payload


def group_resource(group: ScimGroup, location: str, *, members: bool = True) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schemas": [Group.__schema__],
        "id": str(group.scim_id),
        "displayName": group.display_name,
        "meta": {
            "resourceType": "Group",
            "created": group.created_at.isoformat(),
            "lastModified": group.updated_at.isoformat(),
            "location": location,
        },
    }
    if group.external_id:
        payload["externalId"] = group.external_id
    if members:
        base = location.rsplit("/Groups/", 1)[0]
        payload["members"] = [
            {
                "value": str(m.person.scim_id),
                "$ref": f"{base}/Users/{m.person.scim_id}",
                "type": "User",
                **({"display": m.display} if m.display else {}),
            }
            for m in group.memberships.all()
        ]
    return payload


def users(directory: ScimDirectory, filter_text: str | None) -> QuerySet[ScimUser]:
    rows = ScimUser.objects.for_tenant(directory.tenant).prefetch_related("groups")
    return rows.filter(**filter_lookup(filter_text, USER_FILTERS)) if filter_text else rows


def groups(directory: ScimDirectory, filter_text: str | None) -> QuerySet[ScimGroup]:
    rows = ScimGroup.objects.for_tenant(directory.tenant).prefetch_related("memberships__person")
    return rows.filter(**filter_lookup(filter_text, GROUP_FILTERS)) if filter_text else rows


def user(directory: ScimDirectory, scim_id: str) -> ScimUser:
    key = _scim_id(scim_id)
    person = users(directory, None).filter(scim_id=key).select_related("user", "tenant").first() if key else None
    if person is None:
        raise _not_found("user")
    return person


def group(directory: ScimDirectory, scim_id: str) -> ScimGroup:
    key = _scim_id(scim_id)
    found = groups(directory, None).filter(scim_id=key).select_related("tenant").first() if key else None
    if found is None:
        raise _not_found("group")
    return found


# ------------------------------------------------------------------------ people

MAX_CHARS = 254  # the columns' bound (an address's too): longer is refused, never cut (it names someone)


def _bounded(name: str, value: Any, *, required: bool = False) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise ScimError(400, f"{name} is required.", "invalidValue")
    if len(text) > MAX_CHARS:
        raise ScimError(400, f"{name} is longer than {MAX_CHARS} characters.", "invalidValue")
    return text


def _address(resource: Any) -> str:
    """The account's address: the primary email the directory sends, else any, else the userName (a UPN)."""
    emails = list(resource.emails or [])
    primary = next((e.value for e in emails if e.primary and e.value), None)
    address = primary or next((e.value for e in emails if e.value), None) or resource.user_name
    address = _bounded("The email address", address).lower()
    try:
        validate_email(address)
    except DjangoValidationError as error:
        raise ScimError(
            400, "The user needs an email address (emails or an address as userName).", "invalidValue"
        ) from error
    return address


def _full_name(resource: Any) -> str:
    name = resource.name
    if name is not None and name.formatted:
        return str(name.formatted)[:150]
    parts = [name.given_name, name.family_name] if name is not None else []
    joined = " ".join(str(p) for p in parts if p)
    return (joined or str(resource.display_name or ""))[:150]


def _stored(resource: Any) -> dict[str, Any]:
    payload = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return {key: value for key, value in payload.items() if key not in _NOT_STORED}


def _account_for(directory: ScimDirectory, address: str, full_name: str) -> User:
    """The account to provision: a new one, or the existing one of a person already in this organisation.

    An account of someone outside the organisation is never taken over on the directory's word (it would hand the
    account to whoever runs that directory): the person is invited instead.
    """
    existing = User.objects.filter(email__iexact=address).first()
    if existing is None:
        return User.objects.create_user(email=address, password=None, full_name=full_name)
    if not Membership.objects.for_tenant(directory.tenant).filter(user=existing).exists():
        raise _conflict("An account with this address exists outside this organisation; invite the person instead.")
    return existing


def create_user(*, directory: ScimDirectory, payload: Any, ip: str | None = None) -> ScimUser:
    resource = parse(UserResource, payload, Context.RESOURCE_CREATION_REQUEST)
    user_name = _bounded("userName", resource.user_name, required=True)
    external_id = _bounded("externalId", resource.external_id)
    address, full_name = _address(resource), _full_name(resource)
    try:
        with transaction.atomic():
            key = user_name.lower()
            if ScimUser.objects.for_tenant(directory.tenant).filter(user_name_key=key).exists():
                raise _conflict("A user with this userName already exists.")
            person = ScimUser.objects.create(
                tenant=directory.tenant,
                user=_account_for(directory, address, full_name),
                user_name=user_name,
                user_name_key=key,
                external_id=external_id,
                active=resource.active is not False,
                resource=_stored(resource),
            )
            role = services.sync_access(person, directory=directory, ip=ip)
            events.scim_user_created(person=person, role=role or "", ip=ip)
    except IntegrityError as error:  # the same userName or address created at the same moment
        raise _conflict("A user with this userName or address already exists.") from error
    return person


def _change_address(person: ScimUser, address: str, full_name: str) -> None:
    """Follow the directory's new address and name on the account, if the account is this organisation's alone and
    signs in through it (no Quetzal password): a person who also belongs to another organisation keeps the address
    they sign in with (one directory must not move another's login)."""
    account = User.objects.select_for_update().get(pk=person.user_id)
    elsewhere = Membership.objects.filter(user=account).exclude(tenant_id=person.tenant_id).exists()
    # An account with a Quetzal password was the person's before the directory knew it: moving its address would
    # let whoever runs the directory reset that password.
    if elsewhere or account.has_usable_password():
        return
    changed = []
    if account.email != address:
        if User.objects.filter(email__iexact=address).exclude(pk=account.pk).exists():
            raise _conflict("Another account already uses this address.")
        account.email = address
        changed.append("email")
    if full_name and account.full_name != full_name:
        account.full_name = full_name
        changed.append("full_name")
    if changed:
        account.save(update_fields=changed)


def _write(person: ScimUser, resource: Any, *, ip: str | None) -> ScimUser:
    """Store a replaced or patched resource, and what it means for the person's access (in one transaction)."""
    user_name = _bounded("userName", resource.user_name, required=True)
    external_id = _bounded("externalId", resource.external_id)
    address, full_name = _address(resource), _full_name(resource)
    try:
        with transaction.atomic():
            person = ScimUser.objects.select_for_update().select_related("user", "tenant").get(pk=person.pk)
            was_active, active = person.active, resource.active is not False
            if was_active and not active:
                services.ensure_keeps_owner(person)
            person.user_name = user_name
            person.user_name_key = user_name.lower()
            person.external_id = external_id
            person.active = active
            person.resource = _stored(resource)
            person.updated_at = timezone.now()
            person.save()
            _change_address(person, address, full_name)
            role = services.sync_access(person, ip=ip)
            if was_active and not active:
                events.scim_user_suspended(person=person, sessions_ended=services.end_sessions(person), ip=ip)
            elif active and not was_active:
                events.scim_user_restored(person=person, role=role or "", ip=ip)
            else:
                events.scim_user_updated(person=person, ip=ip)
    except IntegrityError as error:
        raise _conflict("A user with this userName already exists.") from error
    except ServiceError as error:
        raise _from_service(error) from error
    return person


def replace_user(*, directory: ScimDirectory, scim_id: str, payload: Any, ip: str | None = None) -> ScimUser:
    person = user(directory, scim_id)
    return _write(person, parse(UserResource, payload, Context.RESOURCE_REPLACEMENT_REQUEST), ip=ip)


def patch_user(*, directory: ScimDirectory, scim_id: str, payload: Any, ip: str | None = None) -> ScimUser:
    person = user(directory, scim_id)
    current = UserResource.model_validate(
        {
            **(person.resource or {}),
            "userName": person.user_name,
            "externalId": person.external_id or None,
        }
    )
    payload = add_missing_typed_values(payload, current)
    return _write(person, patch(UserResource, current, payload), ip=ip)


def delete_user(*, directory: ScimDirectory, scim_id: str, ip: str | None = None) -> None:
    """The directory removed the person: their membership here ends (their account and desktops stay)."""
    person = user(directory, scim_id)
    try:
        with transaction.atomic():
            person = ScimUser.objects.select_for_update().select_related("user", "tenant").get(pk=person.pk)
            services.ensure_keeps_owner(person)
            person.active = False
            services.sync_access(person, ip=ip)
            services.end_sessions(person)
            events.scim_user_deleted(person=person, ip=ip)
            person.delete()
    except ServiceError as error:
        raise _from_service(error) from error


# ------------------------------------------------------------------------ groups


def _members(directory: ScimDirectory, resource: Any) -> dict[ScimUser, str]:
    """The group's people (of this tenant only) with the display each membership was sent with."""
    displays: dict[uuid.UUID, str] = {}
    for member in resource.members or []:
        key = _scim_id(member.value)
        if key is None:
            raise ScimError(400, "A member's value is not a user id of this organisation.", "invalidValue")
        displays[key] = str(member.display or "")[:254]
    found = list(ScimUser.objects.for_tenant(directory.tenant).filter(scim_id__in=displays).select_related("user"))
    if len(found) != len(displays):
        raise ScimError(400, "A member is not a user of this organisation.", "invalidValue")
    return {person: displays[person.scim_id] for person in found}


def _resync(people: set[ScimUser], directory: ScimDirectory, ip: str | None) -> None:
    for person in sorted(people, key=lambda p: p.pk):
        if person.active:
            services.sync_access(person, directory=directory, ip=ip)


def _save_group(directory: ScimDirectory, found: ScimGroup | None, resource: Any, ip: str | None) -> ScimGroup:
    members = _members(directory, resource)
    display_name = _bounded("displayName", resource.display_name, required=True)
    external_id = _bounded("externalId", resource.external_id)
    try:
        with transaction.atomic():
            if found is None:
                found = ScimGroup(tenant=directory.tenant)
                before: set[ScimUser] = set()
            else:
                found = ScimGroup.objects.select_for_update().get(pk=found.pk)
                before = set(found.members.select_related("user", "tenant"))
            found.display_name = display_name
            found.display_name_key = display_name.lower()
            found.external_id = external_id
            found.updated_at = timezone.now()
            found.save()
            found.memberships.all().delete()
            ScimGroupMember.objects.bulk_create(
                ScimGroupMember(group=found, person=person, display=display) for person, display in members.items()
            )
            events.scim_group_saved(group=found, members=len(members), ip=ip)
            _resync(before | set(members), directory, ip)
    except IntegrityError as error:
        raise _conflict("A group with this displayName already exists.") from error
    return found


def create_group(*, directory: ScimDirectory, payload: Any, ip: str | None = None) -> ScimGroup:
    return _save_group(directory, None, parse(Group, payload, Context.RESOURCE_CREATION_REQUEST), ip)


def replace_group(*, directory: ScimDirectory, scim_id: str, payload: Any, ip: str | None = None) -> ScimGroup:
    found = group(directory, scim_id)
    return _save_group(directory, found, parse(Group, payload, Context.RESOURCE_REPLACEMENT_REQUEST), ip)


def patch_group(*, directory: ScimDirectory, scim_id: str, payload: Any, ip: str | None = None) -> ScimGroup:
    found = group(directory, scim_id)
    current = Group.model_validate(
        {
            "displayName": found.display_name,
            "externalId": found.external_id or None,
            "members": [
                {"value": str(m.person.scim_id), **({"display": m.display} if m.display else {})}
                for m in found.memberships.all()
            ],
        }
    )
    return _save_group(directory, found, patch(Group, current, payload), ip)


def delete_group(*, directory: ScimDirectory, scim_id: str, ip: str | None = None) -> None:
    found = group(directory, scim_id)
    with transaction.atomic():
        found = ScimGroup.objects.select_for_update().get(pk=found.pk)
        people = set(found.members.select_related("user", "tenant"))
        events.scim_group_deleted(group=found, ip=ip)
        found.delete()
        _resync(people, directory, ip)
