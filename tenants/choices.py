"""Fixed vocabularies of the tenants app."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


ADMIN_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class TenantStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    # Made by self-service sign-up: read-only, nothing runs, until an operator approves it.
    PENDING = "pending", "Pending approval"


class IdleAction(models.TextChoices):
    NONE = "none", "Do nothing"
    STOP = "stop", "Shut down"
    HIBERNATE = "hibernate", "Hibernate (keep open windows)"
    RECYCLE = "recycle", "Recycle (pooled desktops)"


class EgressPolicy(models.TextChoices):
    """What a desktop may reach outside when no firewall rule matches."""

    ALLOW_ALL = "allow_all", "Allow all outbound traffic"
    DENY_ALL = "deny_all", "Deny all outbound traffic but the allow rules"


class ResizePolicy(models.TextChoices):
    """Who may pick a size other than a template's default, and resize a desktop later."""

    MEMBERS = "members", "Members, within the template's sizes"
    ADMINS = "admins", "Tenant admins only"
