"""django-allauth's social-account hooks: tenants' providers as allauth apps, and who a provider may let in."""

from __future__ import annotations

import logging
from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from django.utils.translation import gettext

from quetzal.kek import UnwrapError
from tenants.models import User
from tenants.services.audit import client_ip
from tenants.sso import pages, saml, services
from tenants.sso.choices import ProviderKind
from tenants.sso.discovery import normalised_issuer
from tenants.sso.models import IdentityProvider

log = logging.getLogger(__name__)
OIDC = "openid_connect"


def as_app(provider: IdentityProvider) -> SocialApp:
    """The allauth app of a provider, in memory only: the secret is unsealed for this request and never stored."""
    domains = list(provider.domains.routed().values_list("domain", flat=True))
    if provider.is_saml:
        return saml.as_app(provider, domains)
    return SocialApp(
        provider=OIDC,
        provider_id=provider.provider_id,
        name=provider.name,
        client_id=provider.client_identifier,
        secret=services.client_secret(provider),
        settings={
            "server_url": normalised_issuer(provider.issuer_url),
            "scope": provider.scopes.split(),
            # The provider speaks for the domains its tenant routes (verified), and admit() refuses any other address.
            "verified_email": domains,
            "fetch_userinfo": True,
            "oauth_pkce_enabled": True,
        },
    )


def claims_of(sociallogin: SocialLogin, provider: IdentityProvider) -> dict[str, Any]:
    """What the provider said of the person: the ID token's claims overlaid with userinfo's (the richer source, as
    allauth reads it), or what a SAML assertion's attributes say."""
    data = sociallogin.account.extra_data or {}
    if provider.is_saml:
        return saml.claims(provider, data)
    id_token: dict[str, Any] = data["id_token"] if isinstance(data.get("id_token"), dict) else {}
    userinfo: dict[str, Any] = data["userinfo"] if isinstance(data.get("userinfo"), dict) else {}
    # amr says how the provider authenticated: only the ID token carries it reliably.
    return {**id_token, **userinfo, "amr": id_token.get("amr", userinfo.get("amr"))}


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request, provider=None, client_id=None) -> list[SocialApp]:
        # Only the tenants' providers: there are no SocialApp rows and no providers in settings.
        if provider in (None, OIDC):
            rows = list(IdentityProvider.objects.filter(enabled=True, kind=ProviderKind.OIDC))
        elif provider == saml.SAML:
            # allauth's SAML views look an app up by its client id, the provider id in their URL.
            row = services.provider_by_id(str(client_id or ""))
            rows = [row] if row is not None and row.enabled and row.is_saml else []
        else:
            row = services.provider_by_id(str(provider))
            # A directory (LDAP) provider is no allauth app: it signs in on our own password page.
            rows = [row] if row is not None and row.enabled and not row.is_ldap else []
        apps = []
        for row in rows:
            # A SAML app's client id is its provider id (the slug of allauth's SAML URLs).
            if client_id is not None and (row.provider_id if row.is_saml else row.client_identifier) != client_id:
                continue
            try:
                apps.append(as_app(row))
            except UnwrapError as error:
                services.record_error(row, f"The client secret does not open under this KEK: {error}")
        return apps

    def is_open_for_signup(self, request, sociallogin) -> bool:
        # Just-in-time provisioning: a tenant's provider makes accounts for its people (admit() decided who).
        return services.provider_by_id(sociallogin.account.provider) is not None

    def pre_social_login(self, request, sociallogin: SocialLogin) -> None:
        provider = services.provider_by_id(sociallogin.account.provider)
        if provider is None:
            return
        claims = claims_of(sociallogin, provider)
        email = str(claims.get("email") or "")
        user = sociallogin.user if sociallogin.is_existing else User.objects.filter(email__iexact=email).first()
        try:
            if sociallogin.state.get("process") not in (None, "login"):
                # A provider account is linked by signing in through it (admit and may_link decide), never by
                # "connect" from another signed-in account, whose address the provider did not vouch for.
                raise services.SignInRefused(
                    gettext("Sign in through %(name)s from the sign-in page instead.") % {"name": provider.name},
                    code="sso_connect",
                )
            services.admit(provider=provider, claims=claims, user=user)
            if not sociallogin.is_existing and user is not None:
                if not services.may_link(provider=provider, user=user):
                    raise services.SignInRefused(
                        gettext(
                            "An account for %(email)s already exists outside %(name)s: "
                            "ask an admin to invite it, then sign in again."
                        )
                        % {"email": email, "name": provider.tenant.name},
                        code="sso_account_exists",
                    )
                sociallogin.connect(request, user)
        except services.SignInRefused as refusal:
            services.refuse(provider=provider, email=email, refusal=refusal, user=user, ip=client_ip(request))
            raise ImmediateHttpResponse(pages.refused(request, provider, refusal)) from None

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        provider = services.provider_by_id(sociallogin.account.provider)
        if provider is not None and provider.is_saml:
            user.full_name = str(claims_of(sociallogin, provider).get("name") or "")[:150]
        return user

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None) -> None:
        row = services.provider_by_id(getattr(getattr(provider, "app", None), "provider_id", "") or "")
        if row is None:
            return
        saml_reason = (extra_context or {}).get("saml_last_error_reason")
        if saml_reason:
            why = f"SAML response refused: {saml_reason}"
        elif exception is not None:
            why = f"{type(exception).__name__}: {exception}"
        elif row.is_saml:
            why = "SAML: an answer to no sign-in started here (IdP-initiated, or its session was lost)."
        else:
            why = f"sign-in ended: {error}"
        log.warning("single sign-on through %s failed: %s", row.provider_id, why)
        services.record_error(row, why)
        if saml_reason:
            # Unsigned, changed after signing, for another SP, expired: the answer itself is refused, not the IdP.
            refusal = services.SignInRefused(
                gettext(
                    "Quetzal could not verify the answer %(name)s sent (it must be signed, unchanged and meant for "
                    "this sign-in), so it refused it. Try again; if it keeps happening, ask your administrator."
                )
                % {"name": row.name},
                code="sso_saml_invalid",
            )
            services.refuse(provider=row, email="", refusal=refusal, user=None, ip=client_ip(request))
            raise ImmediateHttpResponse(pages.refused(request, row, refusal))
        if str(error) == "cancelled":
            return  # the person chose to stop: allauth's own "cancelled" page says so
        raise ImmediateHttpResponse(pages.unavailable(request, row))
