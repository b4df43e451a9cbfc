"""Personal API tokens: created once, stored hashed, revoked at will."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext

from quetzal.errors import Conflict, ServiceError
from tenants import events
from tenants.models import ApiToken, Membership
from tenants.models.token import TokenScope

TOKEN_PREFIX = "qz_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(
    *,
    membership: Membership,
    name: str,
    expires_at: datetime | None = None,
    scope: str = TokenScope.FULL,
    ip: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token acting as this person in this tenant; the raw secret is returned once."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError(gettext("A token's expiry must be in the future."), code="token_expiry_past")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=membership.user,
            tenant=membership.tenant,
            name=name.strip() or "API token",
            prefix=raw[: len(TOKEN_PREFIX) + 6],
            token_hash=hash_token(raw),
            expires_at=expires_at,
            scope=TokenScope(scope),
        )
        events.token_created(actor=membership.user, token=token, ip=ip)
    return token, raw


def revoke_token(*, token: ApiToken, actor, ip: str | None = None) -> None:
    """Stop a token from working; revoking twice is refused."""
    with transaction.atomic():
        won = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if not won:
            raise Conflict(gettext("This token is already revoked."), code="token_revoked")
        events.token_revoked(actor=actor, token=token, ip=ip)


_MEMBERSHIP_COLUMNS = ("id", "role", "created_at")


def membership_of(token: ApiToken) -> Membership | None:
    """The membership authenticate_token read with the token: its person in its tenant, or None if they left."""
    if getattr(token, "membership_id", None) is None:
        return None
    # Annotated by authenticate_token's query, not fields of the model.
    values = [
        token.membership_id,  # type: ignore[attr-defined]
        token.user_id,
        token.tenant_id,
        token.membership_role,  # type: ignore[attr-defined]
        token.membership_created_at,  # type: ignore[attr-defined]
    ]
    membership = Membership.from_db(token._state.db, ["id", "user_id", "tenant_id", "role", "created_at"], values)
    membership.user, membership.tenant = token.user, token.tenant
    return membership


# A token's last use is written (and audited) at most this often: scripts may call many times a second, and a
# write per request would be one more statement in every claim of a morning storm.
LAST_USED_EVERY_S = 60


def authenticate_token(raw: str, *, ip: str | None = None, now: datetime | None = None) -> ApiToken | None:
    """The usable token with this secret, marking when it was last used (at most once a minute, audited then).

    `now` is the moment of the request (tests pass a later one instead of waiting a minute).
    """
    if not raw.startswith(TOKEN_PREFIX):
        return None
    # The membership comes with the token (its columns as subqueries on the unique user+tenant pair): one round trip.
    membership = Membership.objects.filter(user=OuterRef("user_id"), tenant=OuterRef("tenant_id"))
    token = (
        ApiToken.objects.select_related("user", "tenant")
        .annotate(**{f"membership_{name}": Subquery(membership.values(name)[:1]) for name in _MEMBERSHIP_COLUMNS})
        .filter(token_hash=hash_token(raw))
        .first()
    )
    if token is None or not token.is_usable or not token.user.is_active:
        return None
    now = now or timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_EVERY_S:
        with transaction.atomic():
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            events.token_used(token=token, ip=ip)
    return token
