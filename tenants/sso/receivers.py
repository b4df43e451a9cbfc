"""After allauth signs someone in through a tenant's provider: their membership, second-factor state and audit."""

from __future__ import annotations

from allauth.account.signals import user_logged_in
from django.dispatch import receiver

from tenants.resolution import SESSION_KEY as TENANT_SESSION_KEY
from tenants.services.audit import client_ip
from tenants.sso import services
from tenants.sso.adapter import claims_of
from tenants.twofactor import SSO_SESSION_KEY


@receiver(user_logged_in, dispatch_uid="sso.signed_in")
def signed_in_through_provider(sender, request, user, sociallogin=None, **kwargs) -> None:
    if sociallogin is None:
        return
    provider = services.provider_by_id(sociallogin.account.provider)
    if provider is None:
        return
    # admit() passed in pre_social_login with these same claims; it decides the role again, here with the account.
    admission = services.admit(provider=provider, claims=claims_of(sociallogin, provider), user=user)
    membership = services.apply(admission=admission, user=user, ip=client_ip(request))
    request.session[SSO_SESSION_KEY] = {
        "provider": provider.pk,
        "provider_mfa": admission.mfa and not services.requires_totp(provider),
        "require_totp": services.requires_totp(provider),
    }
    # The tenant the provider belongs to is where the person lands.
    request.session[TENANT_SESSION_KEY] = membership.tenant_id
