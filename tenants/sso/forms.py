"""The provider forms of the admin console (OpenID Connect, SAML 2.0, LDAP), and the sign-in forms: the one that
routes an address to its provider, and a directory's password page."""

from __future__ import annotations

import re

from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.forms import ResetPasswordForm as AllauthResetPasswordForm
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from quetzal.forms import CleanTextFormMixin, Form, ModelForm
from tenants.choices import Role
from tenants.sso import directory, flows, saml, services, trust
from tenants.sso.choices import MfaPolicy, ProviderKind
from tenants.sso.models import CHALLENGE_LABEL, DOMAIN_RE, IdentityProvider
from tenants.twofactor import is_operator_account

MAX_DOMAINS = 50
# A DNS name's most characters (in text, without the final dot): the challenge name must fit.
MAX_DNS_NAME = 253
MAX_GROUP_ROLES = 100
_DOMAIN = re.compile(DOMAIN_RE)


class _ProviderForm(ModelForm):
    """What every kind of provider has: which domains it signs in, roles from groups, the second factor."""

    email_domains = forms.CharField(
        label=_("Email domains"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "One per line, e.g. acme.com: people of these addresses sign in here once you have verified the "
            "domain (its DNS record is under Email domains)."
        ),
    )
    group_roles_text = forms.CharField(
        required=False,
        max_length=10000,
        label=_("Groups and roles"),
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_(
            "One per line, group = owner, admin or member. Empty: everyone the provider signs in is a member; "
            "otherwise a person in no listed group is refused, and loses their membership at their next sign-in."
        ),
    )
    kind = ProviderKind.OIDC
    wide: tuple[str, ...] = ("email_domains", "group_roles_text")
    required: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in self.required:
            self.fields[name].required = True
        provider = self.instance
        if provider.pk and not self.is_bound:
            self.initial["email_domains"] = "\n".join(provider.domains.values_list("domain", flat=True))
            self.initial["group_roles_text"] = "\n".join(f"{g} = {r}" for g, r in provider.role_names().items())

    def clean_email_domains(self) -> list[str]:
        domains = sorted(
            {line.strip().lower().lstrip("@") for line in self.cleaned_data["email_domains"].split() if line}
        )
        bad = [d for d in domains if not _DOMAIN.fullmatch(d)]
        if bad:
            raise ValidationError(
                gettext("Not a domain: %(join)s.") % {"join": ", ".join(bad[:5])}, code="invalid_domain"
            )
        long = [d for d in domains if len(f"{CHALLENGE_LABEL}.{d}") > MAX_DNS_NAME]
        if long:
            raise ValidationError(
                gettext("Too long to verify in DNS: %(join)s.") % {"join": ", ".join(long[:3])}, code="too_long"
            )
        if not domains:
            raise ValidationError(gettext("Route at least one domain."), code="required")
        if len(domains) > MAX_DOMAINS:
            raise ValidationError(
                gettext("At most %(MAX_DOMAINS)s domains.") % {"MAX_DOMAINS": MAX_DOMAINS}, code="too_many"
            )
        return domains

    def clean_group_roles_text(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["group_roles_text"].splitlines(), start=1):
            if not line.strip():
                continue
            group, equals, role = line.rpartition("=")
            group, role = group.strip(), role.strip().lower()
            if not equals or not group or role not in Role.values:
                raise ValidationError(
                    gettext("Line %(number)s: write it as group = owner, admin or member.") % {"number": number},
                    code="invalid",
                )
            mapping[group[:200]] = role
        if len(mapping) > MAX_GROUP_ROLES:
            raise ValidationError(
                gettext("At most %(MAX_GROUP_ROLES)s groups.") % {"MAX_GROUP_ROLES": MAX_GROUP_ROLES}, code="too_many"
            )
        return mapping

    def values(self) -> dict:
        values = {field: self.cleaned_data[field] for field in self.Meta.fields}
        values["group_roles"] = self.cleaned_data["group_roles_text"]
        return values

    def secret(self) -> str | None:
        raise NotImplementedError


class ProviderForm(_ProviderForm):
    """An OpenID Connect provider: where it is, the client, which domains it signs in, and roles from groups."""

    client_secret = forms.CharField(
        required=False,
        max_length=1000,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted. Leave empty to keep the current secret."),
        label=_("Client secret"),
    )
    clear_secret = forms.BooleanField(required=False, label=_("Remove the stored secret (a public client)"))

    # The page shows the fields in these groups, in this order.
    groups = (
        (_("Provider"), ("name", "issuer_url", "client_identifier", "client_secret", "clear_secret", "scopes")),
        (
            _("Who signs in here, and as what"),
            ("email_domains", "group_roles_text", "groups_claim", "allow_password", "mfa_policy", "enabled"),
        ),
    )
    required = ("issuer_url", "client_identifier")

    class Meta:
        model = IdentityProvider
        fields = [
            "name",
            "issuer_url",
            "client_identifier",
            "scopes",
            "groups_claim",
            "allow_password",
            "mfa_policy",
            "enabled",
        ]
        widgets = {"issuer_url": forms.URLInput(attrs={"placeholder": "https://login.example.com/realms/acme"})}

    def clean_scopes(self) -> str:
        scopes = self.cleaned_data["scopes"].split()
        if "openid" not in scopes:
            raise ValidationError(gettext("The scopes must include openid."), code="invalid")
        return " ".join(dict.fromkeys(scopes))

    def secret(self) -> str | None:
        """The new secret, "" to remove it, or None to keep the stored one."""
        if self.cleaned_data.get("clear_secret"):
            return ""
        return self.cleaned_data.get("client_secret") or None


def _checked(value: str, problem: str | None) -> str:
    if problem:
        raise ValidationError(problem, code="invalid")
    return value


class LdapProviderForm(_ProviderForm):
    """An LDAP / Active Directory server: where it is, the service account, how people and their groups are found."""

    bind_password = forms.CharField(
        required=False,
        max_length=1000,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("The bind DN's password, stored encrypted. Leave empty to keep the current one."),
        label=_("Bind password"),
    )
    groups = (
        (_("Directory"), ("name", "ldap_uri", "ldap_bind_dn", "bind_password")),
        (_("TLS"), ("ldap_start_tls", "ldap_ca_certificate")),
        (_("People"), ("ldap_user_base", "ldap_user_filter", "ldap_email_attribute")),
        (_("Groups"), ("ldap_group_attribute", "ldap_group_base", "ldap_group_filter")),
        (
            _("Who signs in here, and as what"),
            ("email_domains", "group_roles_text", "allow_password", "mfa_policy", "enabled"),
        ),
    )
    kind = ProviderKind.LDAP
    wide = ("ldap_ca_certificate", "email_domains", "group_roles_text")
    required = ("ldap_uri", "ldap_bind_dn", "ldap_user_base", "ldap_user_filter", "ldap_email_attribute")

    class Meta:
        model = IdentityProvider
        fields = [
            "name",
            *services.LDAP_FIELDS,
            "allow_password",
            "mfa_policy",
            "enabled",
        ]
        widgets = {
            "ldap_uri": forms.TextInput(attrs={"placeholder": "ldaps://ldap.example.com"}),
            "ldap_bind_dn": forms.TextInput(attrs={"placeholder": "cn=quetzal,ou=services,dc=example,dc=com"}),
            "ldap_user_base": forms.TextInput(attrs={"placeholder": "ou=people,dc=example,dc=com"}),
            "ldap_ca_certificate": forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "placeholder": trust.BEGIN}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        ca = self.fields["ldap_ca_certificate"]
        ca.max_length = trust.MAX_PEM_BYTES
        ca.validators.append(MaxLengthValidator(trust.MAX_PEM_BYTES))
        # A directory has no MFA claim: "trust the provider" means the tenant's own 2FA policy here.
        self.fields["mfa_policy"].choices = [
            (MfaPolicy.TRUST_PROVIDER, _("The organisation's 2FA setting, as for a password")),
            (MfaPolicy.REQUIRE_TOTP, _("Always require Quetzal's authenticator code as well")),
        ]

    def clean_ldap_uri(self) -> str:
        uri = self.cleaned_data["ldap_uri"].strip()
        return _checked(uri, directory.uri_problem(uri))

    def clean_ldap_ca_certificate(self) -> str:
        text = self.cleaned_data["ldap_ca_certificate"].strip()
        if not text:
            return ""
        try:
            return trust.read(text).pem
        except trust.CaProblem as problem:
            raise ValidationError(str(problem), code="invalid_ca") from problem

    def clean_ldap_bind_dn(self) -> str:
        dn = self.cleaned_data["ldap_bind_dn"].strip()
        return _checked(dn, directory.dn_problem(dn))

    def clean_ldap_user_base(self) -> str:
        dn = self.cleaned_data["ldap_user_base"].strip()
        return _checked(dn, directory.dn_problem(dn))

    def clean_ldap_group_base(self) -> str:
        dn = self.cleaned_data["ldap_group_base"].strip()
        return _checked(dn, directory.dn_problem(dn) if dn else None)

    def clean_ldap_user_filter(self) -> str:
        text = self.cleaned_data["ldap_user_filter"].strip()
        return _checked(text, directory.filter_problem(text, directory.USER_PLACEHOLDERS))

    def clean_ldap_group_filter(self) -> str:
        text = self.cleaned_data["ldap_group_filter"].strip() or "(member={dn})"
        return _checked(text, directory.filter_problem(text, directory.GROUP_PLACEHOLDERS))

    def clean_ldap_email_attribute(self) -> str:
        name = self.cleaned_data["ldap_email_attribute"].strip()
        return _checked(name, directory.attribute_problem(name))

    def clean_ldap_group_attribute(self) -> str:
        name = self.cleaned_data["ldap_group_attribute"].strip()
        return _checked(name, directory.attribute_problem(name) if name else None)

    def clean(self):
        cleaned = super().clean()
        has_groups = cleaned.get("ldap_group_base") or cleaned.get("ldap_group_attribute")
        if cleaned.get("group_roles_text") and not has_groups and "ldap_group_attribute" not in self.errors:
            self.add_error(
                "ldap_group_attribute",
                gettext("Groups are mapped to roles: set a group attribute or a group search base."),
            )
        ldaps = str(cleaned.get("ldap_uri") or "").lower().startswith("ldaps://")
        if cleaned.get("ldap_start_tls") and ldaps:
            self.add_error("ldap_start_tls", gettext("ldaps:// is TLS from the start: StartTLS is for ldap://."))
        if (
            cleaned.get("ldap_ca_certificate")
            and "ldap_uri" in cleaned
            and not ldaps
            and not cleaned.get("ldap_start_tls")
        ):
            self.add_error(
                "ldap_ca_certificate",
                gettext("The CA certificate is for TLS: use an ldaps:// server or turn StartTLS on."),
            )
        if not self.instance.has_secret and not cleaned.get("bind_password") and "bind_password" not in self.errors:
            self.add_error("bind_password", gettext("Enter the bind DN's password."))
        return cleaned

    def secret(self) -> str | None:
        """The new bind password, or None to keep the stored one."""
        return self.cleaned_data.get("bind_password") or None


class SamlProviderForm(_ProviderForm):
    """A SAML 2.0 IdP: its metadata (URL or XML: entity id, sign-in URL and signing certificate are read from it),
    which attributes say the address, name and groups, and who signs in here."""

    groups = (
        (_("Identity provider"), ("name", "saml_metadata_url", "saml_metadata_xml")),
        (_("Attributes"), ("saml_email_attributes", "saml_name_attributes", "saml_groups_attributes")),
        (
            _("Who signs in here, and as what"),
            ("email_domains", "group_roles_text", "allow_password", "mfa_policy", "enabled"),
        ),
    )
    kind = ProviderKind.SAML
    wide = ("saml_metadata_xml", "email_domains", "group_roles_text")
    required = ("saml_email_attributes",)

    class Meta:
        model = IdentityProvider
        fields = [
            "name",
            "saml_metadata_url",
            "saml_metadata_xml",
            "saml_email_attributes",
            "saml_name_attributes",
            "saml_groups_attributes",
            "allow_password",
            "mfa_policy",
            "enabled",
        ]
        widgets = {
            "saml_metadata_url": forms.URLInput(
                attrs={
                    "placeholder": "https://login.microsoftonline.com/…/federationmetadata/2007-06/federationmetadata.xml"
                }
            ),
            "saml_metadata_xml": forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
            "saml_email_attributes": forms.TextInput(attrs={"spellcheck": "false"}),
            "saml_name_attributes": forms.TextInput(attrs={"spellcheck": "false"}),
            "saml_groups_attributes": forms.TextInput(attrs={"spellcheck": "false"}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.metadata: saml.IdpMetadata | None = None
        xml = self.fields["saml_metadata_xml"]
        xml.max_length = saml.MAX_METADATA_BYTES
        xml.validators.append(MaxLengthValidator(saml.MAX_METADATA_BYTES))
        self.fields["mfa_policy"].choices = [
            (
                MfaPolicy.TRUST_PROVIDER,
                _("Trust the IdP's MFA (its authentication context); else Quetzal's code as usual"),
            ),
            (MfaPolicy.REQUIRE_TOTP, _("Always require Quetzal's authenticator code as well")),
        ]

    def _attributes(self, name: str) -> str:
        wanted = saml.names(self.cleaned_data[name])
        bad = [n for n in wanted if len(n) > 250 or any(c in n for c in "<>\"'")]
        if bad:
            raise ValidationError(
                gettext("Not an attribute name: %(join)s.") % {"join": ", ".join(bad[:3])}, code="invalid"
            )
        return " ".join(dict.fromkeys(wanted))

    def clean_saml_email_attributes(self) -> str:
        return self._attributes("saml_email_attributes")

    def clean_saml_name_attributes(self) -> str:
        return self._attributes("saml_name_attributes")

    def clean_saml_groups_attributes(self) -> str:
        return self._attributes("saml_groups_attributes")

    def clean(self):
        cleaned = super().clean()
        if "saml_metadata_url" in self.errors or "saml_metadata_xml" in self.errors:
            return cleaned
        url = cleaned.get("saml_metadata_url")
        try:
            # A URL wins (read now); else the pasted XML: either way the IdP's settings come from its metadata.
            self.metadata = (
                saml.fetch_metadata(url) if url else saml.read_metadata(cleaned.get("saml_metadata_xml") or "")
            )
        except saml.MetadataProblem as problem:
            self.add_error("saml_metadata_url" if url else "saml_metadata_xml", problem.detail)
        if cleaned.get("group_roles_text") and not cleaned.get("saml_groups_attributes"):
            self.add_error("saml_groups_attributes", gettext("Groups are mapped to roles: name the groups attribute."))
        return cleaned

    def values(self) -> dict:
        values = super().values()
        if self.metadata is not None:
            values.update(
                saml_metadata_xml=self.metadata.xml,
                saml_entity_id=self.metadata.entity_id,
                saml_sso_url=self.metadata.sso_url,
                saml_certificate=self.metadata.certificate,
            )
        return values

    def secret(self) -> str | None:
        return None  # a SAML IdP is trusted by its certificate: nothing secret is kept


FORMS = {ProviderKind.LDAP: LdapProviderForm, ProviderKind.SAML: SamlProviderForm}


def provider_form(kind: str | None):
    """The form class of a kind of provider (OpenID Connect unless told otherwise)."""
    return FORMS.get(kind or "", ProviderForm)


class LdapPasswordForm(Form):
    """The directory password of someone whose address routes to an LDAP provider."""

    login = forms.EmailField(label=_("Email"), max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(
        label=_("Password"),
        max_length=1000,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    next = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)


class LoginForm(CleanTextFormMixin, AllauthLoginForm):
    """Email first: an address whose domain routes to a provider goes there; the password only where allowed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.provider: IdentityProvider | None = None
        if "password" in self.fields:
            self.fields["password"].required = False  # an SSO address needs none; checked in clean()

    def clean(self):
        email = str(self.cleaned_data.get("login") or "")
        password = self.cleaned_data.get("password")
        provider = services.provider_for_email(email) if "@" in email else None
        # A directory password typed here (before the script hid the box) is not a Quetzal one: the person goes on
        # to the directory's password page and types it there (it is never carried in the URL).
        directory_password = provider is not None and provider.is_ldap and not provider.allow_password
        if provider is not None and (not password or directory_password):
            self.provider = provider
            return self.cleaned_data
        if provider is not None and not provider.allow_password:
            raise ValidationError(
                gettext("%(name)s signs in through %(name2)s: leave the password empty and continue.")
                % {"name": provider.tenant.name, "name2": provider.name},
                code="sso_required",
            )
        if not password:
            self.add_error("password", ValidationError(gettext("Enter your password."), code="required"))
            return self.cleaned_data
        return super().clean()

    def login(self, request, redirect_url=None):
        if self.provider is not None and self.provider.is_ldap:
            return flows.password_page(str(self.cleaned_data.get("login") or ""), redirect_url)
        if self.provider is not None:
            return flows.start(request, self.provider, redirect_url)
        return super().login(request, redirect_url=redirect_url)


class ResetPasswordForm(CleanTextFormMixin, AllauthResetPasswordForm):
    """No reset e-mail for an address whose tenant signs it in through its provider only: that password is the
    provider's (and a Quetzal one would not sign in anyway, tenants.sso.backends)."""

    def clean_email(self):
        email = super().clean_email()
        # An operator keeps the reset wherever they keep the password (an unverified domain: tenants.sso.backends).
        provider = services.password_refused(email, operator=any(is_operator_account(user) for user in self.users))
        if provider is not None:
            raise ValidationError(
                gettext(
                    "%(name)s signs you in through %(name2)s: change your password there, or ask your administrator."
                )
                % {"name": provider.tenant.name, "name2": provider.name},
                code="sso_required",
            )
        return email
