"""The Django authentication backend of LDAP sign-in, so a directory password goes through django.contrib.auth's
authenticate(): django-axes' backend before it refuses a locked-out account, and a wrong password sends
user_login_failed, which axes counts and the audit log records, exactly as for a Quetzal password."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from tenants.services.audit import client_ip
from tenants.sso import ldap
from tenants.sso.choices import ProviderKind
from tenants.sso.models import IdentityProvider


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
