"""Inviting people by email and accepting invitations."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from quetzal.errors import Conflict, Forbidden, NotFound, ServiceError
from tenants import events, readonly, signals
from tenants.choices import Role
from tenants.models import Invitation, Membership, Tenant, User


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def invite(
    *,
    tenant: Tenant,
    email: str,
    actor_membership: Membership,
    role: str = Role.MEMBER,
    base_url: str = "",
    ip: str | None = None,
) -> tuple[Invitation, str]:
    """Create an invitation and email its link; returns it with the one-time secret."""
    email = email.strip().lower()
    if role not in Role.values:
        raise ServiceError(gettext("Unknown role '%(role)s'.") % {"role": role}, code="invalid_role")
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise Forbidden(gettext("Only an owner can invite another owner."), code="owner_required")
    if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
        raise Conflict(gettext("%(email)s is already a member.") % {"email": email}, code="already_member")
    raw = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            tenant=tenant,
            email=email,
            role=role,
            token_hash=_hash(raw),
            invited_by=actor_membership.user,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
        )
        events.invitation_created(actor=actor_membership.user, invitation=invitation, ip=ip)
    link = base_url + reverse("tenants:invitation_accept", args=[raw])
    send_mail(
        subject=f"You are invited to {tenant.name} on Quetzal",
        message=f"{actor_membership.user.get_full_name()} invited you to join {tenant.name} as {role}.\n\n"
        f"Accept within {settings.INVITATION_TTL_DAYS} days: {link}\n",
        from_email=None,
        recipient_list=[email],
    )
    return invitation, raw


def find_pending(raw: str) -> Invitation:
    """The invitation for this secret, or a clear reason why it can't be used."""
    invitation = Invitation.objects.select_related("tenant").filter(token_hash=_hash(raw)).first()
    if invitation is None or invitation.revoked_at is not None:
        raise NotFound(gettext("This invitation does not exist or was withdrawn."), code="invitation_invalid")
    if invitation.accepted_at is not None:
        raise Conflict(gettext("This invitation has already been used."), code="invitation_used")
    if invitation.expires_at <= timezone.now():
        raise ServiceError(
            gettext("This invitation has expired; ask for a new one."), code="invitation_expired", status=410
        )
    return invitation


def accept(*, raw: str, user: User, ip: str | None = None) -> Membership:
    """Join the tenant with the invited role; each invitation works once."""
    with transaction.atomic():
        invitation = find_pending(raw)
        readonly.ensure_writable(invitation.tenant)
        if user.email.lower() != invitation.email.lower():
            raise Forbidden(
                gettext("This invitation was sent to %(email)s; sign in with that address.")
                % {"email": invitation.email},
                code="invitation_email_mismatch",
            )
        # The conditional update is the guard: of two concurrent accepts only one wins.
        won = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
            accepted_at=timezone.now(), accepted_by=user
        )
        if not won:
            raise Conflict(gettext("This invitation has already been used."), code="invitation_used")
        try:
            with transaction.atomic():
                membership = Membership.objects.create(tenant=invitation.tenant, user=user, role=invitation.role)
        except IntegrityError:
            raise Conflict(gettext("You are already a member of this organisation."), code="already_member") from None
        events.invitation_accepted(actor=user, invitation=invitation, membership=membership, ip=ip)
        signals.announce_join(membership.pk, via="invitation")
    return membership


def accept_as_new_user(*, raw: str, password: str, full_name: str = "", ip: str | None = None) -> Membership:
    """Create the invited person's account (email proven by the link) and join."""
    with transaction.atomic():
        invitation = find_pending(raw)
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise Conflict(gettext("An account with this email exists; sign in to accept."), code="account_exists")
        user = User.objects.create_user(email=invitation.email, password=password, full_name=full_name)
        EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
        return accept(raw=raw, user=user, ip=ip)


def revoke(*, invitation: Invitation, actor, ip: str | None = None) -> None:
    """Withdraw a pending invitation."""
    with transaction.atomic():
        won = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not won:
            raise Conflict(gettext("This invitation is no longer pending."), code="invitation_not_pending")
        events.invitation_revoked(actor=actor, invitation=invitation, ip=ip)
