"""Fixed vocabularies of the tenants app."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    MEMBER = "member", _("Member")


ADMIN_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class TenantStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", pgettext_lazy("tenant status", "Suspended")  # not a desktop's "Suspended"
    # Made by self-service sign-up: read-only, nothing runs, until an operator approves it.
    PENDING = "pending", _("Pending approval")


class IdleAction(models.TextChoices):
    NONE = "none", _("Do nothing")
    STOP = "stop", _("Shut down")
    HIBERNATE = "hibernate", _("Hibernate (keep open windows)")
    RECYCLE = "recycle", _("Recycle (pooled desktops)")


class EgressPolicy(models.TextChoices):
    """What a desktop may reach outside when no firewall rule matches."""

    ALLOW_ALL = "allow_all", _("Allow all outbound traffic")
    DENY_ALL = "deny_all", _("Deny all outbound traffic but the allow rules")


class ResizePolicy(models.TextChoices):
    """Who may pick a size other than a template's default, and resize a desktop later."""

    MEMBERS = "members", _("Members, within the template's sizes")
    ADMINS = "admins", _("Tenant admins only")
