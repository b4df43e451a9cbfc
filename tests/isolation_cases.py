"""One case per API route, for the tenant isolation matrix; a new route needs a new case here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from tenants.choices import Role
from tenants.models import AuditEvent, Invitation, Membership
from tenants.services import tokens
from tests.factories import UserFactory


@dataclass(frozen=True)
class Case:
    """How to make tenant A's object for a route, and who in A may read it."""

    make: Callable | None = None  # (world) -> object of tenant A; None for routes without an object
    reader: str = "member"  # which of A's people may GET it: member / admin / owner
    methods: tuple[str, ...] = ("get",)  # methods tried by outsiders (must all be 404 / 401)
    body: dict = field(default_factory=dict)


def _membership(world):
    user = UserFactory(email=f"extra-{world.tenant.slug}@example.test")
    return Membership.objects.create(user=user, tenant=world.tenant, role=Role.MEMBER)


def _invitation(world):
    return Invitation.objects.create(
        tenant=world.tenant,
        email=f"invitee@{world.tenant.slug}.test",
        token_hash=f"h-{world.tenant.slug}",
        expires_at=timezone.now() + timedelta(days=1),
    )


def _token(world):
    token, _ = tokens.create_token(membership=world.membership(world.member), name="ci")
    return token


def _audit(world):
    return AuditEvent.objects.create(tenant=world.tenant, actor=world.owner, action="test.event")


CASES: dict[str, Case] = {
    "api:tenant-current": Case(methods=("get", "patch"), body={"name": "hijacked"}),
    "api:tenant-mine": Case(),
    "api:member-list": Case(make=_membership),
    "api:member-detail": Case(make=_membership, methods=("get", "patch", "delete"), body={"role": "owner"}),
    "api:invitation-list": Case(make=_invitation, reader="admin"),
    "api:invitation-detail": Case(make=_invitation, reader="admin", methods=("get", "delete")),
    "api:token-list": Case(make=_token),
    "api:token-detail": Case(make=_token, methods=("get", "delete")),
    "api:auditevent-list": Case(make=_audit, reader="admin"),
    "api:auditevent-detail": Case(make=_audit, reader="admin", methods=("get",)),
}
