"""Sending a person to their tenant's provider, and guarding allauth's own provider views against a broken one."""

from __future__ import annotations

import functools
import logging

import requests
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.openid_connect import views as oidc_views
from django.http import Http404, HttpRequest, HttpResponse

from quetzal.kek import UnwrapError
from tenants.sso import pages, services
from tenants.sso.discovery import ProviderUnreachable, discover
from tenants.sso.models import IdentityProvider

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
)


def _failed(request: HttpRequest, provider: IdentityProvider, error: Exception) -> HttpResponse:
    why = getattr(error, "detail", None) or f"{type(error).__name__}: {error}"
    log.warning("single sign-on through %s failed: %s", provider.provider_id, why)
    services.record_error(provider, why)
    return pages.unavailable(request, provider)


def start(request: HttpRequest, provider: IdentityProvider, next_url: str | None) -> HttpResponse:
    """Redirect to the provider's authorization page; a provider that cannot be reached gives the 'ask' page."""
    try:
        discover(provider.issuer_url)
        allauth_provider = get_adapter().get_provider(request, provider.provider_id)
        return allauth_provider.redirect(request, process="login", next_url=next_url)
    except PROVIDER_FAILURES as error:
        return _failed(request, provider, error)


def _guarded(view):
    """allauth's provider view, answering the 'ask' page instead of a server error when the provider is broken."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, provider_id: str) -> HttpResponse:
        provider = services.provider_by_id(provider_id)
        if provider is None or not provider.enabled:
            raise Http404("No such sign-in provider.")
        try:
            discover(provider.issuer_url)  # first, so a broken provider is told in words, not as an exception
            return view(request, provider_id)
        except PROVIDER_FAILURES as error:
            return _failed(request, provider, error)

    return guarded


login = _guarded(oidc_views.login)
callback = _guarded(oidc_views.callback)
