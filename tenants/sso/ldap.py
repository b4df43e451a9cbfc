"""LDAP sign-in for a tenant's directory: check a person's password there, then admit and provision them as
OpenID Connect sign-ins are (the same admission, group -> role mapping, membership upkeep and audit)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from tenants.models import User
from tenants.sso import directory, services
from tenants.sso.models import DirectoryAccount, IdentityProvider

# Groups reach admit() under the provider's groups claim, as an OpenID Connect provider's would.
DEFAULT_GROUPS_KEY = "groups"


def settings_of(provider: IdentityProvider) -> directory.DirectorySettings:
    """The provider's directory settings with its bind password unsealed (for this call only)."""
    return directory.DirectorySettings(
        uri=provider.ldap_uri,
        bind_dn=provider.ldap_bind_dn,
        bind_password=services.client_secret(provider),
        user_base=provider.ldap_user_base,
        user_filter=provider.ldap_user_filter,
        email_attribute=provider.ldap_email_attribute or "mail",
        group_attribute=provider.ldap_group_attribute,
        group_base=provider.ldap_group_base,
        group_filter=provider.ldap_group_filter,
        ca_certificate=provider.ldap_ca_certificate,
        start_tls=provider.ldap_start_tls,
    )


def test_connection(provider: IdentityProvider) -> str:
    """Reach the directory, bind as the service account, find the bases; a sentence, or DirectoryUnavailable."""
    return directory.check(settings_of(provider))


def sign_in(*, provider: IdentityProvider, email: str, password: str, ip: str | None) -> User | None:
    """The account of the person whose directory password this is, made or updated now; None for a wrong password
    or an unknown person. Raises DirectoryUnavailable (the directory failed) or SignInRefused (audited)."""
    person = directory.authenticate(settings_of(provider), email, password)
    if person is None:
        return None
    return provision(provider=provider, person=person, ip=ip)


def provision(*, provider: IdentityProvider, person: directory.Person, ip: str | None) -> User:
    """Admit the person the directory vouched for, link or make their account, and give them the mapped role."""
    claims = {"email": person.email, provider.groups_claim or DEFAULT_GROUPS_KEY: list(person.groups)}
    dn = person.dn.lower()[:1000]
    link = DirectoryAccount.objects.for_tenant(provider.tenant).filter(provider=provider, dn=dn).first()
    user = link.user if link is not None else User.objects.filter(email__iexact=person.email).first()
    try:
        admission = services.admit(provider=provider, claims=claims, user=user)
        if link is None and user is not None and not services.may_link(provider=provider, user=user):
            raise services.SignInRefused(
                gettext(
                    "An account for %(email)s already exists outside %(name)s: "
                    "ask an admin to invite it, then sign in again."
                )
                % {"email": person.email, "name": provider.tenant.name},
                code="sso_account_exists",
            )
    except services.SignInRefused as refusal:
        services.refuse(provider=provider, email=person.email, refusal=refusal, user=user, ip=ip)
        raise
    with transaction.atomic():
        if user is None:
            user = User.objects.create_user(email=admission.email, password=None)
        if link is None:
            try:
                with transaction.atomic():
                    DirectoryAccount.objects.create(tenant=provider.tenant, provider=provider, user=user, dn=dn)
            except IntegrityError:
                pass  # the same person's other sign-in linked it a moment ago
        services.apply(admission=admission, user=user, ip=ip)
    return user
