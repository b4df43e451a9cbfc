"""Console access: one-time tickets (hashes only), console sessions and their recordings.

The tables were made when these models lived in the desktops app. They keep their names (db_table): the
move needed no DDL, and the code before and after it can run against the same database during a deploy.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.querysets import TenantOwned


class ConsoleTicket(TenantOwned):
    """A one-time, short-lived right to open one desktop's console from one browser session."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    desktop = models.ForeignKey(
        "desktops.Desktop", verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="console_tickets"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    # Only hashes are stored: a database dump must not hold usable tickets or session keys.
    token_hash = models.CharField(verbose_name=_("token hash"), max_length=64, unique=True, editable=False)
    session_key_hash = models.CharField(verbose_name=_("session key hash"), max_length=64, editable=False)
    admin_access = models.BooleanField(
        verbose_name=_("admin access"), default=False, help_text=_("Issued to a tenant admin for a member's desktop.")
    )
    ip_address = models.GenericIPAddressField(verbose_name=_("ip address"), null=True, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    used_at = models.DateTimeField(verbose_name=_("used at"), null=True, blank=True)
    # The same ticket opens the session's sound channel once, after the console itself used it.
    audio_used_at = models.DateTimeField(verbose_name=_("audio used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("console ticket")
        verbose_name_plural = _("console tickets")
        db_table = "desktops_consoleticket"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"console ticket for {self.desktop_id} ({self.user_id})"


class ConsoleSession(TenantOwned):
    """One console connection: who, which desktop, from where, when, and how many bytes each way."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    desktop = models.ForeignKey(
        "desktops.Desktop", verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="console_sessions"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    admin_access = models.BooleanField(
        verbose_name=_("admin access"), default=False, help_text=_("A tenant admin opened a member's console.")
    )
    client_ip = models.GenericIPAddressField(verbose_name=_("client ip"), null=True, blank=True)
    user_agent = models.CharField(verbose_name=_("user agent"), max_length=300, blank=True)
    started_at = models.DateTimeField(verbose_name=_("started at"), default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(
        verbose_name=_("last seen at"), default=timezone.now, help_text=_("Heartbeat of the proxy serving it.")
    )
    ended_at = models.DateTimeField(verbose_name=_("ended at"), null=True, blank=True)
    end_reason = models.CharField(verbose_name=_("end reason"), max_length=64, blank=True)
    bytes_to_desktop = models.PositiveBigIntegerField(verbose_name=_("bytes to desktop"), default=0)
    bytes_from_desktop = models.PositiveBigIntegerField(verbose_name=_("bytes from desktop"), default=0)

    class Meta:
        verbose_name = _("console session")
        verbose_name_plural = _("console sessions")
        db_table = "desktops_consolesession"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-started_at"]), models.Index(fields=["ended_at", "last_seen_at"])]

    def __str__(self) -> str:
        return f"console of {self.desktop_id} by {self.user_id} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def duration_s(self) -> float | None:
        end = self.ended_at or timezone.now()
        return (end - self.started_at).total_seconds()


class Recording(TenantOwned):
    """The desktop-to-browser stream of one console session, with timestamps, in a file."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    desktop = models.ForeignKey(
        "desktops.Desktop", verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="recordings"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    session = models.OneToOneField(
        ConsoleSession, verbose_name=_("session"), on_delete=models.CASCADE, related_name="recording"
    )
    path = models.CharField(verbose_name=_("path"), max_length=500, help_text=_("Relative to RECORDINGS_ROOT."))
    started_at = models.DateTimeField(verbose_name=_("started at"), default=timezone.now, db_index=True)
    ended_at = models.DateTimeField(verbose_name=_("ended at"), null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(verbose_name=_("size bytes"), default=0)
    frames = models.PositiveIntegerField(verbose_name=_("frames"), default=0)
    duration_ms = models.PositiveBigIntegerField(verbose_name=_("duration ms"), default=0)

    class Meta:
        verbose_name = _("recording")
        verbose_name_plural = _("recordings")
        db_table = "desktops_recording"
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"recording of {self.desktop_id} at {self.started_at:%Y-%m-%d %H:%M}"
