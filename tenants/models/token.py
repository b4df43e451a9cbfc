"""Personal API tokens: stored hashed, scoped to one tenant, revocable."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.querysets import TenantQuerySet


class TokenScope(models.TextChoices):
    """What a token may do: everything its person may, or only automation (desktops.services.automation)."""

    FULL = "full", _("Everything its person may do")
    AUTOMATION_READ = "automation_read", _("Automation: screenshots and screen waits only")
    AUTOMATION_INPUT = "automation_input", _("Automation: screenshots and input")
    AUTOMATION_EXEC = "automation_exec", _("Automation: screenshots, input and commands in the guest")


class ApiToken(models.Model):
    """A script's credential; the secret is shown once and only its hash is kept."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="api_tokens"
    )
    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    name = models.CharField(verbose_name=_("name"), max_length=100)
    prefix = models.CharField(
        verbose_name=_("prefix"), max_length=12, help_text=_("First characters of the secret, to recognise it.")
    )
    token_hash = models.CharField(verbose_name=_("token hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    last_used_at = models.DateTimeField(verbose_name=_("last used at"), null=True, blank=True)
    expires_at = models.DateTimeField(verbose_name=_("expires at"), null=True, blank=True)
    revoked_at = models.DateTimeField(verbose_name=_("revoked at"), null=True, blank=True)
    # An automation token also names the desktops or templates it may drive (desktops.AutomationTarget).
    scope = models.CharField(
        verbose_name=_("scope"), max_length=20, choices=TokenScope.choices, default=TokenScope.FULL
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("api token")
        verbose_name_plural = _("api tokens")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_automation_only(self) -> bool:
        return self.scope != TokenScope.FULL

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
