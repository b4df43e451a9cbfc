"""Console tickets: one-time, at most 60 s, stored as hashes, bound to person, desktop and browser session."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from desktops.choices import DesktopState
from desktops.console import fair_share
from desktops.console.errors import (
    ConsoleForbidden,
    DesktopNotFound,
    DesktopNotRunning,
    SessionRequired,
    TicketInvalid,
)
from desktops.console.models import ConsoleTicket
from desktops.models import Desktop

MAX_TTL_S = 60
DEFAULT_TTL_S = 30
# The browser offers the ticket as a WebSocket subprotocol, so it never lands in URLs or access logs.
PROTOCOL_PREFIX = "quetzal.ticket."
BINARY_PROTOCOL = "binary"

_REFUSALS = {
    "unknown": "This console link is not valid; reload the page.",
    "used": "This console link was already used; reload the page for a new one.",
    "expired": "This console link expired; reload the page for a new one.",
    "mismatch": "This console link belongs to another person, desktop or browser.",
}


def ttl_s() -> int:
    """The ticket lifetime from settings, never above the 60 s ceiling."""
    return max(1, min(MAX_TTL_S, int(getattr(settings, "CONSOLE_TICKET_TTL_S", DEFAULT_TTL_S))))


def digest(value: str) -> str:
    """SHA-256 hex of a secret; tokens are random, so no salt is needed."""
    return hashlib.sha256(value.encode()).hexdigest()


def admin_access(*, desktop: Desktop, user, membership) -> bool:
    """Whether user may open this console (False: their own; True: as a tenant admin); raises when not."""
    if membership is None or membership.tenant_id != desktop.tenant_id:
        raise DesktopNotFound(gettext("No such desktop."))
    if desktop.user_id == user.pk:
        return False
    if not membership.is_admin:
        # Members do not see each other's desktops at all, so this is "not found", not "forbidden".
        raise DesktopNotFound(gettext("No such desktop."))
    if not desktop.tenant.allow_admin_console_access:
        raise ConsoleForbidden(
            gettext("Your organisation does not allow admins to open members' consoles."), code="admin_console_disabled"
        )
    return True


def ensure_running(desktop: Desktop) -> None:
    """Refuse a console for a desktop that is not running, naming its state."""
    if desktop.state != DesktopState.RUNNING:
        raise DesktopNotRunning(
            gettext("%(name)s is %(lower)s.") % {"name": desktop.name, "lower": desktop.get_state_display().lower()}
        )


@dataclass(frozen=True)
class IssuedTicket:
    """A new ticket: the row and the only copy of its secret, for the browser."""

    ticket: ConsoleTicket
    token: str
    ttl_s: int

    @property
    def protocol(self) -> str:
        return PROTOCOL_PREFIX + self.token


def issue(*, desktop: Desktop, user, membership, session_key: str | None, ip: str | None = None) -> IssuedTicket:
    """A ticket for this person, desktop and browser session, if they may open the console now."""
    if not session_key:
        raise SessionRequired(gettext("Open the console from a signed-in browser session."))
    is_admin_access = admin_access(desktop=desktop, user=user, membership=membership)
    ensure_running(desktop)
    now = timezone.now()
    # Said before the page connects, so it can tell the person why; the socket's own check is the binding one.
    fair_share.ensure_room(tenant=desktop.tenant, user=user, now=now)
    token = secrets.token_urlsafe(32)
    lifetime = ttl_s()
    ticket = ConsoleTicket.objects.create(
        tenant_id=desktop.tenant_id,
        desktop=desktop,
        user=user,
        token_hash=digest(token),
        session_key_hash=digest(session_key),
        admin_access=is_admin_access,
        ip_address=ip,
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
    )
    return IssuedTicket(ticket=ticket, token=token, ttl_s=lifetime)


def token_from_protocols(protocols: list[str] | tuple[str, ...]) -> str:
    """The ticket offered among the WebSocket subprotocols ('' when none)."""
    for protocol in protocols:
        if protocol.startswith(PROTOCOL_PREFIX):
            return protocol[len(PROTOCOL_PREFIX) :]
    return ""


def redeem(*, token: str, desktop_id: int, user, session_key: str | None) -> ConsoleTicket:
    """Use a ticket exactly once; a ticket presented by the wrong person or browser is burnt too."""
    if not token:
        raise TicketInvalid(gettext("No console ticket was presented; reload the page."), code="ticket_missing")
    token_hash = digest(token)
    now = timezone.now()
    with transaction.atomic():
        # One guarded UPDATE: of two racing connections with the same ticket exactly one wins.
        won = ConsoleTicket.objects.filter(
            token_hash=token_hash,
            desktop_id=desktop_id,
            user_id=user.pk,
            session_key_hash=digest(session_key or ""),
            used_at__isnull=True,
            expires_at__gt=now,
        ).update(used_at=now)
        ticket = ConsoleTicket.objects.filter(token_hash=token_hash).first()
        if won:
            return ticket
        if ticket is None:
            reason = "unknown"
        elif ticket.used_at is not None:
            reason = "used"
        elif ticket.expires_at <= now:
            reason = "expired"
        else:
            reason = "mismatch"
            # Whoever leaked it loses it as well: a stolen ticket must not stay usable for its owner's thief.
            ConsoleTicket.objects.filter(pk=ticket.pk, used_at__isnull=True).update(used_at=now)
    raise TicketInvalid(_REFUSALS[reason], code=f"ticket_{reason}")


def redeem_audio(*, token: str, desktop_id: int, user, session_key: str | None) -> ConsoleTicket:
    """Use the console's own ticket once more, for its sound channel: only after the console used it."""
    if not token:
        raise TicketInvalid(gettext("No console ticket was presented; reload the page."), code="ticket_missing")
    now = timezone.now()
    won = ConsoleTicket.objects.filter(
        token_hash=digest(token),
        desktop_id=desktop_id,
        user_id=user.pk,
        session_key_hash=digest(session_key or ""),
        used_at__isnull=False,
        audio_used_at__isnull=True,
        expires_at__gt=now,
    ).update(audio_used_at=now)
    if not won:
        raise TicketInvalid(gettext("This sound link is not valid; reconnect the console."), code="ticket_audio")
    return ConsoleTicket.objects.get(token_hash=digest(token))


def purge(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete tickets that expired long ago; they only matter for a minute."""
    deleted, _ = ConsoleTicket.objects.filter(expires_at__lt=timezone.now() - older_than).delete()
    return deleted
