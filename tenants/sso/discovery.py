"""Reading a provider's OpenID Connect discovery document, with a clear error for each way it goes wrong."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from allauth.socialaccount.adapter import get_adapter
from django.utils.translation import gettext

from quetzal.errors import ServiceError

WELL_KNOWN = "/.well-known/openid-configuration"
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


class ProviderUnreachable(ServiceError):
    """The provider's discovery could not be read or does not describe an OpenID provider (502)."""

    code = "sso_provider_unavailable"
    status = 502


@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    scopes_supported: tuple[str, ...]


def normalised_issuer(url: str) -> str:
    """The issuer as compared: no trailing slash (providers differ, the spec compares exactly otherwise)."""
    return url.strip().rstrip("/")


def discovery_url(issuer_url: str) -> str:
    return normalised_issuer(issuer_url) + WELL_KNOWN


def discover(issuer_url: str) -> Discovery:
    """The provider's discovery document, checked: reachable, JSON, its issuer the one configured, endpoints there."""
    url = discovery_url(issuer_url)
    try:
        with get_adapter().get_requests_session() as session:
            response = session.get(url)
    except requests.RequestException as error:
        raise ProviderUnreachable(
            gettext("Could not reach %(url)s: %(name)s.") % {"url": url, "name": type(error).__name__}
        ) from error
    if response.status_code != 200:
        raise ProviderUnreachable(
            gettext("%(url)s answered HTTP %(status_code)s, not the discovery document.")
            % {"url": url, "status_code": response.status_code}
        )
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ProviderUnreachable(gettext("%(url)s did not answer a JSON discovery document.") % {"url": url})
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or normalised_issuer(issuer) != normalised_issuer(issuer_url):
        raise ProviderUnreachable(
            f"The provider says its issuer is {issuer!r}, not {normalised_issuer(issuer_url)!r}: "
            "enter the issuer URL exactly as the provider gives it."
        )
    missing = [name for name in REQUIRED_ENDPOINTS if not isinstance(document.get(name), str)]
    if missing:
        raise ProviderUnreachable(gettext("The discovery document has no %(join)s.") % {"join": ", ".join(missing)})
    scopes = document.get("scopes_supported")
    return Discovery(
        issuer=issuer,
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        userinfo_endpoint=str(document.get("userinfo_endpoint") or ""),
        jwks_uri=document["jwks_uri"],
        scopes_supported=tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else (),
    )
