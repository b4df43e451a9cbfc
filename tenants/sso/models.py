"""A tenant's identity providers and the email domains routed to them."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from tenants.choices import Role
from tenants.querysets import TenantOwned, TenantQuerySet
from tenants.sso.choices import MfaPolicy

# A DNS name, lower case, at least one dot: what follows the @ of an address.
DOMAIN_RE = r"^(?=.{3,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


class IdentityProvider(TenantOwned):
    """One OpenID Connect provider of one tenant (its client secret kept sealed under the KEK)."""

    name = models.CharField(max_length=80, help_text="Shown on the sign-in button, e.g. Acme Entra ID.")
    issuer_url = models.URLField(
        "Issuer URL", max_length=500, help_text="The issuer; discovery is read from its .well-known."
    )
    client_identifier = models.CharField("Client ID", max_length=255)
    client_secret_sealed = models.BinaryField(editable=False, default=b"")
    client_secret_kek_id = models.CharField(max_length=16, editable=False, default="")
    scopes = models.CharField(max_length=255, default="openid email profile")
    groups_claim = models.CharField(
        "Groups claim", max_length=64, default="groups", help_text="The claim that lists the groups."
    )
    # {"group name": "owner" | "admin" | "member"}; empty: everyone the provider signs in is a member.
    group_roles = models.JSONField(default=dict, blank=True)
    allow_password = models.BooleanField(
        "Password sign-in still allowed",
        default=False,
        help_text="People of these domains may still sign in with a Quetzal password.",
    )
    mfa_policy = models.CharField(
        "Second factor", max_length=16, choices=MfaPolicy.choices, default=MfaPolicy.TRUST_PROVIDER
    )
    enabled = models.BooleanField(default=True)
    # The last failure met at sign-in (the person sees "ask your admin"; the admin reads this on the page).
    last_error = models.CharField(max_length=500, blank=True, default="", editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def provider_id(self) -> str:
        """The id allauth knows this provider by (its login and callback URLs carry it)."""
        return f"idp{self.pk}"

    @property
    def has_secret(self) -> bool:
        return bool(self.client_secret_kek_id)

    def role_names(self) -> dict[str, str]:
        """The group mapping with only known roles (the column is JSON: never trust its shape)."""
        if not isinstance(self.group_roles, dict):
            return {}
        return {str(g): r for g, r in self.group_roles.items() if r in Role.values}


class EmailDomain(TenantOwned):
    """An email domain routed to a provider: a domain belongs to one provider across all tenants."""

    provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="domains")
    domain = models.CharField(max_length=253, unique=True, validators=[RegexValidator(DOMAIN_RE)])

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain
