"""A tenant's "desktop for every new member" policy."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.querysets import TenantOwned


class NewMemberDesktop(TenantOwned):
    """Each person who joins the tenant (invitation, single sign-on) gets a personal desktop of `template`.

    Made in the background and left stopped, so it is there when they first sign in; a refusal (a quota, a
    template no longer offered) is kept in `last_error` for the tenant's admins, and never stops the join.
    """

    tenant = models.OneToOneField(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="new_member_desktop"
    )
    template = models.ForeignKey(
        "desktops.DesktopTemplate", verbose_name=_("template"), on_delete=models.PROTECT, related_name="+"
    )
    enabled = models.BooleanField(
        verbose_name=_("enabled"), default=True, help_text=_("Give every new member a desktop of this template.")
    )
    last_error = models.CharField(verbose_name=_("last error"), max_length=500, blank=True, default="", editable=False)
    last_error_at = models.DateTimeField(verbose_name=_("last error at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("new member desktop")
        verbose_name_plural = _("new member desktops")

    def __str__(self) -> str:
        return f"New members of {self.tenant}: {self.template}"
