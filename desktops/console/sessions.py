"""Console sessions: authorise a connection, record its start, heartbeat and end (audited)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import import_module
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from desktops.console import activity, fair_share, recordings, tickets
from desktops.console.errors import (
    ConsoleError,
    ConsoleForbidden,
    ConsoleUnavailable,
    DesktopNotFound,
    NotSignedIn,
    TicketInvalid,
)
from desktops.console.models import ConsoleSession, Recording
from desktops.console.recordfile import RecordingStats
from desktops.console.rfb import ConsolePolicy
from desktops.models import Desktop
from desktops.services import disk_keys, quotas
from tenants import events
from tenants.models import Membership

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_S = 30
# A session whose proxy has been silent for this many heartbeats is taken as lost (process killed).
STALE_AFTER_HEARTBEATS = 4


def heartbeat_s() -> int:
    """How often an open console reports bytes and input (CONSOLE_HEARTBEAT_S)."""
    return max(1, int(getattr(settings, "CONSOLE_HEARTBEAT_S", DEFAULT_HEARTBEAT_S)))


@dataclass(frozen=True)
class ConsoleGrant:
    """Everything the proxy needs once a connection is authorised; no secret goes to the browser."""

    session_id: int
    desktop_id: int
    tenant_id: int
    host_uri: str
    host_address: str
    domain_name: str
    recording_id: int | None = None
    recording_path: Path | None = None
    # The tenant's recording key: the file is sealed with it as it is written (never sent anywhere).
    recording_key: bytes | None = field(default=None, repr=False)
    # The tenant's clipboard and sound rules, enforced on the RFB stream by the proxy (desktops/console/rfb.py).
    policy: ConsolePolicy = field(default_factory=ConsolePolicy)


def _require_signed_in(user, session_key: str | None, message: str) -> None:
    if user is None or not user.is_authenticated or not session_key:
        raise NotSignedIn(message)


def _tenant_desktop(tenant, desktop_id: int, *related: str) -> Desktop | None:
    """The tenant's living desktop with this id (None for another tenant's: they are told "not found")."""
    return (
        Desktop.objects.for_tenant(tenant)
        .alive()
        .select_related("tenant", "host", *related)
        .filter(pk=desktop_id)
        .first()
    )


def open_session(
    *,
    token: str,
    desktop_id: int,
    user,
    membership,
    session_key: str | None,
    ip: str | None = None,
    user_agent: str = "",
) -> ConsoleGrant:
    """Check the ticket, the person and the desktop, then record the session; nothing is opened on refusal."""
    _require_signed_in(user, session_key, "Sign in again to open the console.")
    tenant = membership.tenant if membership is not None else None
    desktop = _tenant_desktop(tenant, desktop_id, "user")
    try:
        if desktop is None:
            raise DesktopNotFound(gettext("No such desktop."))
        tickets.redeem(token=token, desktop_id=desktop.pk, user=user, session_key=session_key)
        # Checked again at connect time: the policy or the desktop may have changed since the ticket.
        admin_access = tickets.admin_access(desktop=desktop, user=user, membership=membership)
        tickets.ensure_running(desktop)
        if desktop.host is None:
            raise ConsoleUnavailable(gettext("%(name)s has no host.") % {"name": desktop.name})
    except ConsoleError as error:
        if tenant is not None:
            events.console_refused(
                actor=user, tenant=tenant, desktop=desktop, desktop_id=desktop_id, code=error.code, ip=ip
            )
        raise
    now = timezone.now()
    try:
        session, recording = _record_session(desktop, user, admin_access, ip, user_agent, now)
    except ConsoleError as error:
        # After the rollback, so the refusal stays on record
        events.console_refused(
            actor=user, tenant=desktop.tenant, desktop=desktop, desktop_id=desktop_id, code=error.code, ip=ip
        )
        raise
    return ConsoleGrant(
        session_id=session.pk,
        desktop_id=desktop.pk,
        tenant_id=desktop.tenant_id,
        host_uri=desktop.host.uri,
        host_address=desktop.host.console_address,
        domain_name=desktop.domain_name,
        recording_id=recording.pk if recording else None,
        recording_path=recordings.file_path(recording) if recording else None,
        recording_key=disk_keys.tenant_recording_key(desktop.tenant) if recording else None,
        policy=policy_of(desktop.tenant),
    )


def _record_session(desktop: Desktop, user, admin_access: bool, ip: str | None, user_agent: str, now: datetime):
    """The session row, its recording and its audit event; refused (TooManyConsoles) past the tenant's fair share."""
    with transaction.atomic():
        # Under the tenant's lock: two tabs opening at once cannot both take the last place.
        fair_share.ensure_room(tenant=quotas.lock(desktop.tenant), user=user, now=now)
        session = ConsoleSession.objects.create(
            tenant_id=desktop.tenant_id,
            desktop=desktop,
            user=user,
            admin_access=admin_access,
            client_ip=ip,
            user_agent=user_agent[:300],
            started_at=now,
            last_seen_at=now,
        )
        activity.console_opened(desktop.pk, at=now)
        recording = recordings.start(session) if desktop.tenant.recording_enabled else None
        events.console_opened(
            actor=user,
            desktop=desktop,
            session=session,
            admin_access=admin_access,
            recorded=recording is not None,
            ip=ip,
        )
    return session, recording


@dataclass(frozen=True)
class AudioGrant:
    """Where the sound of an open console session comes from."""

    session_id: int
    desktop_id: int
    host_uri: str
    host_address: str
    domain_name: str


def open_audio(*, token: str, desktop_id: int, user, membership, session_key: str | None) -> AudioGrant:
    """The sound channel of the person's open console on this desktop, if the tenant and template allow sound."""
    _require_signed_in(user, session_key, "Sign in again to hear the desktop.")
    desktop = _tenant_desktop(membership.tenant if membership is not None else None, desktop_id, "template")
    if desktop is None:
        raise DesktopNotFound(gettext("No such desktop."))
    tickets.redeem_audio(token=token, desktop_id=desktop.pk, user=user, session_key=session_key)
    tickets.admin_access(desktop=desktop, user=user, membership=membership)
    tickets.ensure_running(desktop)
    if not desktop.tenant.audio_enabled:
        raise ConsoleForbidden(gettext("Your organisation has switched desktop sound off."), code="audio_disabled")
    if not desktop.template.sound or desktop.host is None:
        raise ConsoleUnavailable(gettext("%(name)s has no sound.") % {"name": desktop.name}, code="audio_unavailable")
    # Sound belongs to a console the person has open right now (the one that used this ticket).
    session = (
        ConsoleSession.objects.filter(desktop=desktop, user=user, ended_at__isnull=True).order_by("-started_at").first()
    )
    if session is None:
        raise TicketInvalid(gettext("Open the console first; its sound comes with it."), code="ticket_audio")
    return AudioGrant(
        session_id=session.pk,
        desktop_id=desktop.pk,
        host_uri=desktop.host.uri,
        host_address=desktop.host.console_address,
        domain_name=desktop.domain_name,
    )


def policy_of(tenant) -> ConsolePolicy:
    """The tenant's console rules as the proxy applies them."""
    return ConsolePolicy(
        clipboard_to_desktop=tenant.clipboard_to_desktop,
        clipboard_from_desktop=tenant.clipboard_from_desktop,
        audio=tenant.audio_enabled,
    )


def _still_allowed(session: ConsoleSession, session_key: str | None) -> bool:
    """Whether the person is still signed in with that browser session and still in the tenant."""
    if session_key is not None and not import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key):
        return False
    return Membership.objects.filter(user_id=session.user_id, tenant_id=session.tenant_id).exists()


def heartbeat(
    *,
    session_id: int,
    bytes_to_desktop: int,
    bytes_from_desktop: int,
    input_at: datetime | None = None,
    session_key: str | None = None,
) -> bool:
    """Report counters and input; False when the session must end (ended elsewhere, signed out, removed)."""
    session = ConsoleSession.objects.filter(pk=session_id).only("desktop_id", "user_id", "tenant_id").first()
    if session is None:
        return False
    if not _still_allowed(session, session_key):
        end_session(
            session_id=session_id,
            reason="access_revoked",
            bytes_to_desktop=bytes_to_desktop,
            bytes_from_desktop=bytes_from_desktop,
            input_at=input_at,
        )
        return False
    alive = ConsoleSession.objects.filter(pk=session_id, ended_at__isnull=True).update(
        last_seen_at=timezone.now(), bytes_to_desktop=bytes_to_desktop, bytes_from_desktop=bytes_from_desktop
    )
    if alive and input_at is not None:
        activity.input_seen(session.desktop_id, at=input_at)
    return bool(alive)


def end_session(
    *,
    session_id: int,
    reason: str,
    bytes_to_desktop: int,
    bytes_from_desktop: int,
    input_at: datetime | None = None,
    recording: RecordingStats | None = None,
    recording_id: int | None = None,
) -> bool:
    """Close the session once (a second call is a no-op) and release its hold on the idle policy."""
    now = timezone.now()
    with transaction.atomic():
        ended = ConsoleSession.objects.filter(pk=session_id, ended_at__isnull=True).update(
            ended_at=now,
            last_seen_at=now,
            end_reason=reason[:64],
            bytes_to_desktop=bytes_to_desktop,
            bytes_from_desktop=bytes_from_desktop,
        )
        if recording_id is not None:
            if recording is not None:
                recordings.finish(recording_id=recording_id, stats=recording, at=now)
            else:
                # The writer failed to close cleanly: keep whatever reached the disk.
                unfinished = Recording.objects.filter(pk=recording_id, ended_at__isnull=True).first()
                if unfinished is not None:
                    recordings.salvage(unfinished, at=now)
        if not ended:
            return False
        session = ConsoleSession.objects.select_related("desktop", "tenant", "user").get(pk=session_id)
        if input_at is not None:
            activity.input_seen(session.desktop_id, at=input_at)
        activity.console_closed(session.desktop_id, at=now)
        events.console_closed(
            session=session,
            reason=reason,
            bytes_to_desktop=bytes_to_desktop,
            bytes_from_desktop=bytes_from_desktop,
            at=now,
        )
    return True


def stale_cutoff(now: datetime) -> datetime:
    """Sessions last heard of before this have lost their proxy (a killed web process)."""
    return now - timedelta(seconds=heartbeat_s() * STALE_AFTER_HEARTBEATS)


def end_stale_sessions(*, now: datetime | None = None) -> int:
    """End sessions whose proxy stopped reporting (a killed web process), so idle shutdown can proceed."""
    now = now or timezone.now()
    ended = 0
    for session in ConsoleSession.objects.filter(ended_at__isnull=True, last_seen_at__lt=stale_cutoff(now)):
        if end_session(
            session_id=session.pk,
            reason="proxy_lost",
            bytes_to_desktop=session.bytes_to_desktop,
            bytes_from_desktop=session.bytes_from_desktop,
        ):
            ended += 1
        recording = Recording.objects.filter(session_id=session.pk, ended_at__isnull=True).first()
        if recording is not None:
            recordings.salvage(recording, at=now)
    return ended
