"""Recordings of console sessions: where they live, finishing them, deleting them after retention."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from desktops.console.errors import RecordingMissing
from desktops.console.models import ConsoleSession, Recording
from desktops.console.recordfile import PlainReader, RecordingFormatError, RecordingStats, stats_of
from desktops.services import disk_keys
from tenants import events
from tenants.models import Tenant

log = logging.getLogger(__name__)


def root() -> Path:
    """RECORDINGS_ROOT, else var/recordings."""
    configured = getattr(settings, "RECORDINGS_ROOT", None)
    return Path(configured) if configured else Path(settings.VAR_DIR) / "recordings"


def file_path(recording: Recording) -> Path:
    """The recording's file, refusing any stored path that would lead outside the root."""
    base = root().resolve()
    path = (base / recording.path).resolve()
    if not path.is_relative_to(base):
        raise RecordingMissing(gettext("This recording's file is not where recordings are kept."))
    return path


def start(session: ConsoleSession) -> Recording:
    """The row for a session about to be recorded; the proxy writes the file."""
    # A random part keeps names unguessable and unique even if ids are reused after a restore.
    relative = f"{session.tenant_id}/{session.desktop_id}/{session.pk}-{secrets.token_hex(4)}.qzrec"
    return Recording.objects.create(
        tenant_id=session.tenant_id,
        desktop_id=session.desktop_id,
        user_id=session.user_id,
        session=session,
        path=relative,
        started_at=session.started_at,
    )


def finish(*, recording_id: int, stats: RecordingStats, at: datetime | None = None) -> bool:
    """Record what the file holds once the proxy closed it; only the first finish counts."""
    return (
        Recording.objects.filter(pk=recording_id, ended_at__isnull=True).update(
            ended_at=at or timezone.now(),
            size_bytes=stats.size_bytes,
            frames=stats.frames,
            duration_ms=stats.duration_ms,
        )
        == 1
    )


def salvage(recording: Recording, *, at: datetime | None = None) -> bool:
    """Finish a recording whose proxy died, from what reached the disk."""
    try:
        stats = stats_of(file_path(recording), key=disk_keys.tenant_recording_key(recording.tenant))
    except (OSError, RecordingFormatError, RecordingMissing):
        stats = RecordingStats(size_bytes=0, frames=0, duration_ms=0)
    return finish(recording_id=recording.pk, stats=stats, at=at)


def open_for_replay(*, recording: Recording, actor, ip: str | None = None) -> BinaryIO:
    """The recording's plain stream (decrypted as it is read) for a tenant admin's replay (audited)."""
    try:
        handle = PlainReader(file_path(recording), key=disk_keys.tenant_recording_key(recording.tenant))
    except FileNotFoundError:
        raise RecordingMissing(gettext("This recording's file is gone (deleted or never written).")) from None
    except RecordingFormatError:
        raise RecordingMissing(
            gettext("This recording's file cannot be read (its key was erased or it is damaged).")
        ) from None
    events.recording_replayed(actor=actor, recording=recording, ip=ip)
    return handle


def _unlink(recording: Recording) -> None:
    try:
        file_path(recording).unlink(missing_ok=True)
    except (OSError, RecordingMissing) as error:
        log.warning("could not delete recording file %s: %s", recording.path, error)


def delete(*, recording: Recording, actor, ip: str | None = None) -> None:
    """A tenant admin deletes one recording: file and row."""
    with transaction.atomic():
        Recording.objects.filter(pk=recording.pk).delete()
        events.recording_deleted(actor=actor, recording=recording, ip=ip)
        transaction.on_commit(lambda: _unlink(recording))


def delete_expired(*, now: datetime | None = None) -> int:
    """Delete recordings older than their tenant's retention (0 days keeps them); returns how many."""
    now = now or timezone.now()
    deleted = 0
    tenant_ids = Recording.objects.values_list("tenant_id", flat=True).distinct()
    for tenant in Tenant.objects.filter(pk__in=tenant_ids, recording_retention_days__gt=0):
        cutoff = now - timedelta(days=tenant.recording_retention_days)
        # Open recordings are never cut under a running session.
        expired = list(Recording.objects.filter(tenant=tenant, started_at__lt=cutoff, ended_at__isnull=False))
        if not expired:
            continue
        with transaction.atomic():
            Recording.objects.filter(pk__in=[r.pk for r in expired]).delete()
            events.recordings_expired(tenant=tenant, count=len(expired))
        for recording in expired:
            _unlink(recording)
        deleted += len(expired)
    return deleted
