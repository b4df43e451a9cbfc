"""What a tenant's directory provisioned: its bearer token, the people and groups it sent, how groups map to roles."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.choices import Role
from tenants.querysets import TenantOwned, TenantQuerySet


class ScimDirectory(TenantOwned):
    """A tenant's provisioning connection: the hash of its one bearer token and the group → role mapping."""

    token_prefix = models.CharField(verbose_name=_("token prefix"), max_length=16, blank=True, default="")
    # sha256 of the token; empty when no token is issued (revoked, or never made).
    token_hash = models.CharField(verbose_name=_("token hash"), max_length=64, blank=True, default="", editable=False)
    token_created_at = models.DateTimeField(verbose_name=_("token created at"), null=True, blank=True)
    token_created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("token created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_used_at = models.DateTimeField(verbose_name=_("last used at"), null=True, blank=True)
    # {"group display name": "owner" | "admin" | "member"}, the shape of tenants.sso's IdentityProvider.group_roles.
    group_roles = models.JSONField(verbose_name=_("group roles"), default=dict, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("SCIM directory")
        verbose_name_plural = _("SCIM directories")
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="scim_directory_one_per_tenant"),
            models.UniqueConstraint(
                fields=["token_hash"], condition=~models.Q(token_hash=""), name="scim_directory_token_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"SCIM {self.tenant_id}"

    @property
    def has_token(self) -> bool:
        return bool(self.token_hash)

    def role_names(self) -> dict[str, str]:
        """The mapping with only known roles (the column is JSON: never trust its shape)."""
        if not isinstance(self.group_roles, dict):
            return {}
        return {str(g): r for g, r in self.group_roles.items() if r in Role.values}


class ScimUser(TenantOwned):
    """A person as the tenant's directory knows them, linked to their Quetzal account.

    `resource` keeps the directory's own attributes (names, emails, the enterprise extension) so that a GET gives
    back what a PUT or PATCH wrote; the columns are what filters and uniqueness need.
    """

    scim_id = models.UUIDField(verbose_name=_("SCIM id"), default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    user_name = models.CharField(verbose_name=_("user name"), max_length=254)
    # userName compares without case (RFC 7643 §4.1.1): the unique key is the lower-cased form.
    user_name_key = models.CharField(verbose_name=_("user name key"), max_length=254, editable=False)
    external_id = models.CharField(verbose_name=_("external id"), max_length=254, blank=True, default="")
    active = models.BooleanField(verbose_name=_("active"), default=True)
    resource = models.JSONField(verbose_name=_("resource"), default=dict, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("SCIM user")
        verbose_name_plural = _("SCIM users")
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user_name_key"], name="scim_user_name_once_per_tenant"),
            models.UniqueConstraint(fields=["tenant", "user"], name="scim_user_account_once_per_tenant"),
        ]

    def __str__(self) -> str:
        return self.user_name


class ScimGroup(TenantOwned):
    """A group the tenant's directory pushes; its name maps to a role through ScimDirectory.group_roles."""

    scim_id = models.UUIDField(verbose_name=_("SCIM id"), default=uuid.uuid4, unique=True, editable=False)
    display_name = models.CharField(verbose_name=_("display name"), max_length=254)
    display_name_key = models.CharField(verbose_name=_("display name key"), max_length=254, editable=False)
    external_id = models.CharField(verbose_name=_("external id"), max_length=254, blank=True, default="")
    members = models.ManyToManyField(
        ScimUser, verbose_name=_("members"), related_name="groups", blank=True, through="ScimGroupMember"
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("SCIM group")
        verbose_name_plural = _("SCIM groups")
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "display_name_key"], name="scim_group_name_once_per_tenant"),
        ]

    def __str__(self) -> str:
        return self.display_name


class ScimGroupMember(models.Model):
    """A person in a directory group, with the display name the directory gave the membership (sent back as is)."""

    group = models.ForeignKey(ScimGroup, verbose_name=_("group"), on_delete=models.CASCADE, related_name="memberships")
    person = models.ForeignKey(ScimUser, verbose_name=_("person"), on_delete=models.CASCADE, related_name="+")
    display = models.CharField(verbose_name=_("display"), max_length=254, blank=True, default="")

    class Meta:
        verbose_name = _("SCIM group member")
        verbose_name_plural = _("SCIM group members")
        constraints = [models.UniqueConstraint(fields=["group", "person"], name="scim_group_member_once")]

    def __str__(self) -> str:
        return f"{self.person_id} in {self.group_id}"
