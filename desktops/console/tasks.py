"""Celery beat task of the console: retention of recordings, lost sessions, old tickets."""

from __future__ import annotations

from celery import shared_task

from desktops.console import recordings, sessions, tickets


@shared_task(acks_late=True)
def cleanup() -> dict[str, int]:
    """Beat: delete recordings past retention, end sessions whose proxy died, purge old tickets."""
    return {
        "recordings_deleted": recordings.delete_expired(),
        "sessions_ended": sessions.end_stale_sessions(),
        "tickets_purged": tickets.purge(),
    }
