"""A tenant's "desktop for every new member" policy."""

from __future__ import annotations

from django.db import models

from tenants.querysets import TenantOwned


class NewMemberDesktop(TenantOwned):
    """Each person who joins the tenant (invitation, single sign-on) gets a personal desktop of `template`.

    Made in the background and left stopped, so it is there when they first sign in; a refusal (a quota, a
    template no longer offered) is kept in `last_error` for the tenant's admins, and never stops the join.
    """

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="new_member_desktop")
    template = models.ForeignKey("desktops.DesktopTemplate", on_delete=models.PROTECT, related_name="+")
    enabled = models.BooleanField(default=True, help_text="Give every new member a desktop of this template.")
    last_error = models.CharField(max_length=500, blank=True, default="", editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"New members of {self.tenant}: {self.template}"
