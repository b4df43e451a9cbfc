"""Fixed vocabularies of single sign-on."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ProviderKind(models.TextChoices):
    """How a provider signs people in: a redirect to OpenID Connect, or their directory password checked by LDAP."""

    OIDC = "oidc", _("OpenID Connect")
    LDAP = "ldap", _("LDAP / Active Directory")


class MfaPolicy(models.TextChoices):
    """How the second factor works for people who sign in through a provider."""

    TRUST_PROVIDER = "trust_provider", _("Trust the provider's MFA (its amr claim); else Quetzal's code as usual")
    REQUIRE_TOTP = "require_totp", _("Always require Quetzal's authenticator code as well")


# RFC 8176 authentication-method references that mean a second factor was used (Entra ID and Okta send "mfa").
MFA_METHODS = frozenset({"mfa", "otp", "hwk", "sms", "fpt", "face", "iris", "retina"})


class DomainStatus(models.TextChoices):
    """Where a routed domain's proof of ownership stands (its DNS TXT record, tenants.sso.domains)."""

    PENDING = "pending", _("Pending")
    VERIFIED = "verified", _("Verified")
    FAILED = "failed", _("Failed")
