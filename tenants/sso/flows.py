"""Sending a person to their tenant's provider (or its LDAP password page), signing them in with a directory
password, and guarding allauth's own provider views against a broken provider."""

from __future__ import annotations

import functools
import logging

import requests
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.openid_connect import views as oidc_views
from allauth.socialaccount.providers.saml import views as saml_views
from django.contrib.auth import authenticate
from django.contrib.auth import login as django_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext
from onelogin.saml2.errors import OneLogin_Saml2_Error

from quetzal.kek import UnwrapError
from tenants.redirects import safe_next
from tenants.resolution import SESSION_KEY as TENANT_SESSION_KEY
from tenants.services.audit import client_ip
from tenants.sso import pages, saml, services
from tenants.sso.directory import DirectoryUnavailable
from tenants.sso.discovery import ProviderUnreachable, discover
from tenants.sso.models import IdentityProvider
from tenants.twofactor import SSO_SESSION_KEY

log = logging.getLogger(__name__)
# What a misconfigured or unreachable provider raises inside allauth before allauth catches anything.
# (SocialApp.DoesNotExist: its secret would not unseal, so the adapter could not build its app.)
PROVIDER_FAILURES = (
    ProviderUnreachable,
    requests.RequestException,
    OAuth2Error,
    UnwrapError,
    SocialApp.DoesNotExist,
    KeyError,
    ValueError,
    # SAML: python3-saml refusing the stored IdP settings (a certificate it cannot use, a bad URL).
    OneLogin_Saml2_Error,
    ImproperlyConfigured,
)


def _failed(request: HttpRequest, provider: IdentityProvider, error: Exception) -> HttpResponse:
    why = getattr(error, "detail", None) or f"{type(error).__name__}: {error}"
    log.warning("single sign-on through %s failed: %s", provider.provider_id, why)
    services.record_error(provider, why)
    return pages.unavailable(request, provider)


def start(request: HttpRequest, provider: IdentityProvider, next_url: str | None) -> HttpResponse:
    """Redirect to the provider's authorization page; a provider that cannot be reached gives the 'ask' page."""
    try:
        if not provider.is_saml:
            discover(provider.issuer_url)
        allauth_provider = get_adapter().get_provider(request, provider.provider_id)
        return allauth_provider.redirect(request, process="login", next_url=next_url)
    except PROVIDER_FAILURES as error:
        return _failed(request, provider, error)


def password_page(email: str, next_url: str | None) -> HttpResponse:
    """A directory's people type their password on our own page (the address carried along)."""
    query = urlencode({"login": email, **({"next": next_url} if next_url else {})})
    return redirect(f"{reverse('sso:ldap-login')}?{query}")


def _guarded(view):
    """allauth's provider view, answering the 'ask' page instead of a server error when the provider is broken."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, provider_id: str) -> HttpResponse:
        provider = services.provider_by_id(provider_id)
        if provider is None or not provider.enabled or provider.is_ldap or provider.is_saml:
            raise Http404("No such sign-in provider.")
        try:
            discover(provider.issuer_url)  # first, so a broken provider is told in words, not as an exception
            return view(request, provider_id)
        except PROVIDER_FAILURES as error:
            return _failed(request, provider, error)

    return guarded


login = _guarded(oidc_views.login)
callback = _guarded(oidc_views.callback)


def _saml_provider(slug: str) -> IdentityProvider:
    provider = services.provider_by_id(slug)
    if provider is None or not provider.is_saml:
        raise Http404("No such sign-in provider.")
    return provider


def _guarded_saml(view):
    """allauth's SAML view of an enabled provider, answering the 'ask' page instead of a server error when the
    provider's settings are broken, and the 'refused' page for an answer to no sign-in started in this browser."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, organization_slug: str) -> HttpResponse:
        provider = _saml_provider(organization_slug)
        if not provider.enabled:
            raise Http404("No such sign-in provider.")
        try:
            return view(request, organization_slug=organization_slug)
        except PermissionDenied:  # allauth found no sign-in of this browser that the answer is for (replayed?)
            refusal = services.SignInRefused(
                gettext("This answer from %(name)s is for no sign-in started here. Start again from the sign-in page.")
                % {"name": provider.name},
                code="sso_saml_unsolicited",
            )
            services.refuse(provider=provider, email="", refusal=refusal, user=None, ip=client_ip(request))
            return pages.refused(request, provider, refusal)
        except PROVIDER_FAILURES as error:
            return _failed(request, provider, error)

    return guarded


saml_login = _guarded_saml(saml_views.login)
saml_acs = _guarded_saml(saml_views.acs)
saml_finish_acs = _guarded_saml(saml_views.finish_acs)
saml_sls = _guarded_saml(saml_views.sls)


def saml_metadata(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The tenant's SP metadata, published while the provider exists (enabled or not: the IdP's admin sets it up
    before anyone signs in); a provider whose stored settings python3-saml refuses answers 502, never a 500."""
    provider = _saml_provider(organization_slug)
    try:
        metadata = saml.sp_metadata(request, provider)
    except (OneLogin_Saml2_Error, ImproperlyConfigured) as error:
        services.record_error(provider, f"SP metadata: {error}")
        return HttpResponse(gettext("This provider's settings are incomplete."), status=502, content_type="text/plain")
    return HttpResponse(metadata, content_type="application/samlmetadata+xml")


def password_sign_in(
    request: HttpRequest, provider: IdentityProvider, email: str, password: str
) -> HttpResponse | None:
    """Sign in with the directory password: the response to send, or None for a wrong password (or a locked-out
    account: axes' middleware answers its page then). Through authenticate(), so the lockout counts it; then on to
    the form's `next` when it stays on this site."""
    try:
        user = authenticate(request, ldap_provider=provider.pk, login=email, password=password)
    except (DirectoryUnavailable, UnwrapError) as error:
        return _failed(request, provider, error)
    except services.SignInRefused as refusal:
        return pages.refused(request, provider, refusal)
    if user is None:
        return None
    django_login(request, user)
    # No MFA claim comes from a directory: the tenant's 2FA policy applies, or Quetzal's code always when told.
    request.session[SSO_SESSION_KEY] = {
        "provider": provider.pk,
        "provider_mfa": False,
        "require_totp": services.requires_totp(provider),
    }
    request.session[TENANT_SESSION_KEY] = provider.tenant_id
    return redirect(safe_next(request))
