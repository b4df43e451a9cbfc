"""A tenant's identity providers and the email domains routed to them."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.choices import Role
from tenants.querysets import TenantOwned, TenantQuerySet
from tenants.sso.choices import DomainStatus, MfaPolicy, ProviderKind
from tenants.sso.dnscheck import describe

# A DNS name, lower case, at least one dot: what follows the @ of an address.
DOMAIN_RE = r"^(?=.{3,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
# A SAML provider's attribute names, first found wins (Entra ID's claim URIs, then Okta's and LDAP-style short names).
SAML_EMAIL_ATTRIBUTES = (
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress email mail urn:oid:0.9.2342.19200300.100.1.3"
)
SAML_NAME_ATTRIBUTES = (
    "http://schemas.microsoft.com/identity/claims/displayname displayName name urn:oid:2.16.840.1.113730.3.1.241"
)
SAML_GROUPS_ATTRIBUTES = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups groups memberOf"
# The TXT record that proves a tenant owns a domain: <label>.<domain> TXT "<prefix><token>".
CHALLENGE_LABEL = "_quetzal-challenge"
RECORD_PREFIX = "quetzal-verify="


def new_token() -> str:
    return secrets.token_urlsafe(24)


class IdentityProvider(TenantOwned):
    """One provider of one tenant: OpenID Connect, a SAML 2.0 IdP or an LDAP directory (a secret sealed under the KEK).

    The sealed secret is the OIDC client secret, or the LDAP service account's bind password: one column, so the
    KEK rotation re-seals both kinds alike.
    """

    kind = models.CharField(
        verbose_name=_("kind"), max_length=8, choices=ProviderKind.choices, default=ProviderKind.OIDC, editable=False
    )
    name = models.CharField(
        verbose_name=_("name"), max_length=80, help_text=_("Shown on the sign-in button, e.g. Acme Entra ID.")
    )
    issuer_url = models.URLField(
        _("Issuer URL"), max_length=500, blank=True, help_text=_("The issuer; discovery is read from its .well-known.")
    )
    client_identifier = models.CharField(_("Client ID"), max_length=255, blank=True)
    # LDAP: where the directory is, the service account that searches it, and how people and groups are found.
    ldap_uri = models.CharField(
        _("Server URI"), max_length=255, blank=True, help_text=_("ldap://host[:port] or ldaps://host[:port].")
    )
    ldap_bind_dn = models.CharField(
        _("Bind DN"), max_length=500, blank=True, help_text=_("The service account that searches for people.")
    )
    ldap_user_base = models.CharField(_("User search base"), max_length=500, blank=True)
    ldap_user_filter = models.CharField(
        _("User filter"),
        max_length=500,
        default="(mail={email})",
        help_text=_("{email} is the address typed, {username} the part before the @."),
    )
    ldap_email_attribute = models.CharField(
        _("Email attribute"),
        max_length=64,
        default="mail",
        help_text=_("mail, or userPrincipalName in Active Directory."),
    )
    ldap_group_attribute = models.CharField(
        _("Group attribute"),
        max_length=64,
        blank=True,
        default="memberOf",
        help_text=_("The person's attribute that lists their groups (used when no group search base is set)."),
    )
    ldap_group_base = models.CharField(
        _("Group search base"),
        max_length=500,
        blank=True,
        help_text=_("Set it to search groups instead of the attribute."),
    )
    ldap_group_filter = models.CharField(
        _("Group filter"),
        max_length=500,
        default="(member={dn})",
        help_text=_("{dn} is the person's DN, {username} their user name."),
    )
    # LDAP over TLS: an internal CA the directory's certificate is issued by (then the only CA trusted), StartTLS.
    ldap_ca_certificate = models.TextField(
        _("CA certificate (PEM)"),
        blank=True,
        help_text=_(
            "The CA that issued the directory's certificate, if it is your own: then only it is trusted for this "
            "server. Empty: the system's CAs."
        ),
    )
    ldap_start_tls = models.BooleanField(
        _("StartTLS"), default=False, help_text=_("Upgrade an ldap:// connection to TLS before binding.")
    )
    # SAML: the IdP's metadata (read from the URL, or pasted) and what was read from it when it was saved.
    saml_metadata_url = models.URLField(
        _("IdP metadata URL"),
        max_length=500,
        blank=True,
        help_text=_("Read when you save and when you test the connection (Entra ID: App Federation Metadata Url)."),
    )
    saml_metadata_xml = models.TextField(
        _("IdP metadata XML"), blank=True, help_text=_("Or paste the metadata file here (used when no URL is given).")
    )
    saml_entity_id = models.CharField(verbose_name=_("IdP entity id"), max_length=1024, blank=True, editable=False)
    saml_sso_url = models.CharField(verbose_name=_("IdP sign-in URL"), max_length=1000, blank=True, editable=False)
    # The IdP's signing certificate (base64 DER, as in the metadata): every assertion must carry its signature.
    saml_certificate = models.TextField(verbose_name=_("IdP signing certificate"), blank=True, editable=False)
    saml_email_attributes = models.CharField(
        _("Email attribute"),
        max_length=1000,
        default=SAML_EMAIL_ATTRIBUTES,
        help_text=_("Attribute names, separated by spaces, the first one present wins; else an email NameID."),
    )
    saml_name_attributes = models.CharField(
        _("Name attribute"),
        max_length=1000,
        blank=True,
        default=SAML_NAME_ATTRIBUTES,
        help_text=_("Attribute names, separated by spaces, the first one present wins."),
    )
    saml_groups_attributes = models.CharField(
        _("Groups attribute"),
        max_length=1000,
        blank=True,
        default=SAML_GROUPS_ATTRIBUTES,
        help_text=_("Attribute names, separated by spaces: the groups of all of them count."),
    )
    client_secret_sealed = models.BinaryField(verbose_name=_("client secret sealed"), editable=False, default=b"")
    client_secret_kek_id = models.CharField(
        verbose_name=_("client secret kek id"), max_length=16, editable=False, default=""
    )
    scopes = models.CharField(verbose_name=_("scopes"), max_length=255, default="openid email profile")
    groups_claim = models.CharField(
        _("Groups claim"), max_length=64, default="groups", help_text=_("The claim that lists the groups.")
    )
    # {"group name": "owner" | "admin" | "member"}; empty: everyone the provider signs in is a member.
    group_roles = models.JSONField(verbose_name=_("group roles"), default=dict, blank=True)
    allow_password = models.BooleanField(
        _("Password sign-in still allowed"),
        default=False,
        help_text=_("People of these domains may still sign in with a Quetzal password."),
    )
    mfa_policy = models.CharField(
        _("Second factor"), max_length=16, choices=MfaPolicy.choices, default=MfaPolicy.TRUST_PROVIDER
    )
    enabled = models.BooleanField(verbose_name=_("enabled"), default=True)
    # The last failure met at sign-in (the person sees "ask your admin"; the admin reads this on the page).
    last_error = models.CharField(verbose_name=_("last error"), max_length=500, blank=True, default="", editable=False)
    last_error_at = models.DateTimeField(verbose_name=_("last error at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("identity provider")
        verbose_name_plural = _("identity providers")
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def provider_id(self) -> str:
        """The id allauth knows this provider by (its login and callback URLs carry it)."""
        return f"idp{self.pk}"

    @property
    def is_ldap(self) -> bool:
        return self.kind == ProviderKind.LDAP

    @property
    def is_saml(self) -> bool:
        return self.kind == ProviderKind.SAML

    @property
    def address(self) -> str:
        """Where the provider is, as its admins know it: the issuer, the IdP's entity id, or the LDAP server."""
        if self.is_ldap:
            return self.ldap_uri
        return self.saml_entity_id if self.is_saml else self.issuer_url

    @property
    def has_secret(self) -> bool:
        return bool(self.client_secret_kek_id)

    def role_names(self) -> dict[str, str]:
        """The group mapping with only known roles (the column is JSON: never trust its shape)."""
        if not isinstance(self.group_roles, dict):
            return {}
        return {str(g): r for g, r in self.group_roles.items() if r in Role.values}


class EmailDomainQuerySet(TenantQuerySet):
    def routed(self) -> EmailDomainQuerySet:
        """The domains that send sign-ins to their provider: verified ones, and those routed before verification
        existed (grandfathered) until someone verifies the domain."""
        return self.filter(models.Q(status=DomainStatus.VERIFIED) | models.Q(grandfathered=True))


class EmailDomain(TenantOwned):
    """An email domain a tenant routes to one of its providers, once the tenant proved it owns it.

    The proof is a DNS TXT record with the row's token (tenants.sso.domains). Several tenants may claim a domain
    while none has verified it; a verified domain is one tenant's alone (the partial unique constraint), and then
    nobody else can add it.
    """

    provider = models.ForeignKey(
        IdentityProvider, verbose_name=_("provider"), on_delete=models.CASCADE, related_name="domains"
    )
    domain = models.CharField(
        verbose_name=_("domain"), max_length=253, db_index=True, validators=[RegexValidator(DOMAIN_RE)]
    )
    # Random per claim: a record published for one tenant's claim never proves another's, nor a later re-claim.
    token = models.CharField(verbose_name=_("token"), max_length=64, default=new_token, editable=False)
    status = models.CharField(
        verbose_name=_("status"), max_length=8, choices=DomainStatus.choices, default=DomainStatus.PENDING
    )
    # Routed before verification existed (migration 0003): keeps routing until verified here or elsewhere.
    grandfathered = models.BooleanField(verbose_name=_("routed before verification"), default=False, editable=False)
    verified_at = models.DateTimeField(verbose_name=_("verified at"), null=True, blank=True, editable=False)
    last_checked_at = models.DateTimeField(verbose_name=_("last checked at"), null=True, blank=True, editable=False)
    # The last check's problem as a code of tenants.sso.dnscheck.MESSAGES and its details, worded when shown.
    last_error_code = models.CharField(
        verbose_name=_("last error"), max_length=24, blank=True, default="", editable=False
    )
    last_error_params = models.JSONField(
        verbose_name=_("last error's details"), default=dict, blank=True, editable=False
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now, editable=False)

    objects = EmailDomainQuerySet.as_manager()

    class Meta:
        verbose_name = _("email domain")
        verbose_name_plural = _("email domains")
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "domain"], name="sso_domain_once_per_tenant"),
            models.UniqueConstraint(
                fields=["domain"], condition=models.Q(status="verified"), name="sso_domain_verified_once"
            ),
        ]

    def __str__(self) -> str:
        return self.domain

    @property
    def routes(self) -> bool:
        return self.status == DomainStatus.VERIFIED or self.grandfathered

    @property
    def last_error(self) -> str:
        """The last check's problem in the reader's language ("" when it found none)."""
        params = self.last_error_params if isinstance(self.last_error_params, dict) else {}
        return describe(self.last_error_code, params)

    @property
    def record_name(self) -> str:
        return f"{CHALLENGE_LABEL}.{self.domain}"

    @property
    def record_value(self) -> str:
        return f"{RECORD_PREFIX}{self.token}"


class DirectoryAccount(TenantOwned):
    """A person's entry in a tenant's LDAP directory, linked to their account (what allauth's SocialAccount is for
    OpenID Connect): the entry signs in as this account again, even after its membership lapsed."""

    provider = models.ForeignKey(
        IdentityProvider, verbose_name=_("provider"), on_delete=models.CASCADE, related_name="directory_accounts"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    # The entry's DN lower-cased (DNs compare without case); bounded like the DN fields of the provider.
    dn = models.CharField(verbose_name=_("dn"), max_length=1000)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("directory account")
        verbose_name_plural = _("directory accounts")
        constraints = [
            models.UniqueConstraint(fields=["provider", "dn"], name="sso_directory_account_one_per_entry"),
            models.UniqueConstraint(fields=["provider", "user"], name="sso_directory_account_one_per_user"),
        ]

    def __str__(self) -> str:
        return self.dn
