"""Authentication backends that know single sign-on.

DirectoryBackend is LDAP sign-in, so a directory password goes through django.contrib.auth's authenticate():
django-axes' backend before it refuses a locked-out account, and a wrong password sends user_login_failed, which
axes counts and the audit log records, exactly as for a Quetzal password.

The password backends refuse a Quetzal password for an address whose tenant signs it in through its provider
only: whatever page asks (the sign-in form, the Django admin's, a later one), since every password sign-in goes
through authenticate() and these backends.
"""

from __future__ import annotations

from allauth.account.auth_backends import AuthenticationBackend
from django.contrib.auth.backends import ModelBackend

from tenants.services.audit import client_ip
from tenants.sso import ldap, services
from tenants.sso.choices import ProviderKind
from tenants.sso.models import IdentityProvider
from tenants.twofactor import is_operator_account


class DirectoryBackend(ModelBackend):
    """Answers only credentials naming an LDAP provider (`ldap_provider`); ModelBackend's get_user serves sessions."""

    def authenticate(self, request, ldap_provider=None, login=None, password=None, **kwargs):  # type: ignore[override]
        if request is None or not isinstance(ldap_provider, int) or not isinstance(login, str):
            return None
        provider = (
            IdentityProvider.objects.filter(pk=ldap_provider, kind=ProviderKind.LDAP, enabled=True)
            .select_related("tenant")
            .first()
        )
        if provider is None:
            return None
        user = ldap.sign_in(provider=provider, email=login, password=password or "", ip=client_ip(request))
        return user if user is not None and self.user_can_authenticate(user) else None


class RefusesPasswordsOfSsoDomains:
    """A password backend's mixin: no user of a provider-only domain (allow_password off) signs in with a password.

    Operators (staff) lose theirs only on a domain the tenant verified it owns (services.password_refused): an
    unverified (grandfathered) route is a tenant's word alone, and that must not lock the platform's operators out.
    """

    def authenticate(self, request, *args, **kwargs):
        user = super().authenticate(request, *args, **kwargs)  # type: ignore[misc]
        if user is not None and services.password_refused(user.email, operator=is_operator_account(user)) is not None:
            return None
        return user


class PasswordBackend(RefusesPasswordsOfSsoDomains, ModelBackend):
    """Django's ModelBackend (the admin's sign-in), minus the passwords of provider-only domains."""


class AllauthPasswordBackend(RefusesPasswordsOfSsoDomains, AuthenticationBackend):
    """allauth's backend (the portal's sign-in), minus the passwords of provider-only domains."""
