"""Fixed vocabularies of single sign-on."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ProviderKind(models.TextChoices):
    """How a provider signs people in: a redirect to OpenID Connect or to a SAML 2.0 IdP, or their directory
    password checked by LDAP."""

    OIDC = "oidc", _("OpenID Connect")
    LDAP = "ldap", _("LDAP / Active Directory")
    SAML = "saml", _("SAML 2.0")


class MfaPolicy(models.TextChoices):
    """How the second factor works for people who sign in through a provider."""

    TRUST_PROVIDER = "trust_provider", _("Trust the provider's MFA (its amr claim); else Quetzal's code as usual")
    REQUIRE_TOTP = "require_totp", _("Always require Quetzal's authenticator code as well")


# RFC 8176 authentication-method references that mean a second factor was used (Entra ID and Okta send "mfa").
MFA_METHODS = frozenset({"mfa", "otp", "hwk", "sms", "fpt", "face", "iris", "retina"})
# What a SAML IdP says for a second factor: its AuthnContextClassRef, or Entra ID's authnmethodsreferences attribute.
SAML_MFA_CONTEXTS = frozenset(
    {
        "http://schemas.microsoft.com/claims/multipleauthn",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
        "https://refeds.org/profile/mfa",
    }
)


class DomainStatus(models.TextChoices):
    """Where a routed domain's proof of ownership stands (its DNS TXT record, tenants.sso.domains)."""

    PENDING = "pending", _("Pending")
    VERIFIED = "verified", _("Verified")
    FAILED = "failed", _("Failed")
