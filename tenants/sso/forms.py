"""The provider form of the admin console, and the sign-in form that routes an address to its provider."""

from __future__ import annotations

import re

from allauth.account.forms import LoginForm as AllauthLoginForm
from django import forms
from django.core.exceptions import ValidationError

from quetzal.forms import CleanTextFormMixin, ModelForm
from tenants.choices import Role
from tenants.sso import flows, services
from tenants.sso.models import DOMAIN_RE, IdentityProvider

MAX_DOMAINS = 50
MAX_GROUP_ROLES = 100
_DOMAIN = re.compile(DOMAIN_RE)


class ProviderForm(ModelForm):
    """An OpenID Connect provider: where it is, the client, which domains it signs in, and roles from groups."""

    client_secret = forms.CharField(
        required=False,
        max_length=1000,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Leave empty to keep the current secret.",
    )
    clear_secret = forms.BooleanField(required=False, label="Remove the stored secret (a public client)")
    email_domains = forms.CharField(
        label="Email domains",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, e.g. acme.com: people of these addresses sign in here.",
    )
    group_roles_text = forms.CharField(
        required=False,
        max_length=10000,
        label="Groups and roles",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line, group = owner, admin or member. Empty: everyone the provider signs in is a member; "
        "otherwise a person in no listed group is refused, and loses their membership at their next sign-in.",
    )

    # The page shows the fields in these groups, in this order.
    groups = (
        ("Provider", ("name", "issuer_url", "client_identifier", "client_secret", "clear_secret", "scopes")),
        (
            "Who signs in here, and as what",
            ("email_domains", "group_roles_text", "groups_claim", "allow_password", "mfa_policy", "enabled"),
        ),
    )
    wide = ("email_domains", "group_roles_text")

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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
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
            raise ValidationError(f"Not a domain: {', '.join(bad[:5])}.", code="invalid_domain")
        if not domains:
            raise ValidationError("Route at least one domain.", code="required")
        if len(domains) > MAX_DOMAINS:
            raise ValidationError(f"At most {MAX_DOMAINS} domains.", code="too_many")
        return domains

    def clean_group_roles_text(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["group_roles_text"].splitlines(), start=1):
            if not line.strip():
                continue
            group, equals, role = line.rpartition("=")
            group, role = group.strip(), role.strip().lower()
            if not equals or not group or role not in Role.values:
                raise ValidationError(f"Line {number}: write it as group = owner, admin or member.", code="invalid")
            mapping[group[:200]] = role
        if len(mapping) > MAX_GROUP_ROLES:
            raise ValidationError(f"At most {MAX_GROUP_ROLES} groups.", code="too_many")
        return mapping

    def clean_scopes(self) -> str:
        scopes = self.cleaned_data["scopes"].split()
        if "openid" not in scopes:
            raise ValidationError("The scopes must include openid.", code="invalid")
        return " ".join(dict.fromkeys(scopes))

    def values(self) -> dict:
        values = {field: self.cleaned_data[field] for field in self.Meta.fields}
        values["group_roles"] = self.cleaned_data["group_roles_text"]
        return values

    def secret(self) -> str | None:
        """The new secret, "" to remove it, or None to keep the stored one."""
        if self.cleaned_data.get("clear_secret"):
            return ""
        return self.cleaned_data.get("client_secret") or None


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
        if provider is not None and not password:
            self.provider = provider
            return self.cleaned_data
        if provider is not None and not provider.allow_password:
            raise ValidationError(
                f"{provider.tenant.name} signs in through {provider.name}: leave the password empty and continue.",
                code="sso_required",
            )
        if not password:
            self.add_error("password", ValidationError("Enter your password.", code="required"))
            return self.cleaned_data
        return super().clean()

    def login(self, request, redirect_url=None):
        if self.provider is not None:
            return flows.start(request, self.provider, redirect_url)
        return super().login(request, redirect_url=redirect_url)
