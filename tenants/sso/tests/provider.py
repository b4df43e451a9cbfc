"""A real OpenID Connect provider beside the tests: the `oidc-provider-mock` package's server in a thread.

It serves discovery, an authorization page, the token endpoint (signed RS256 ID tokens), userinfo and its
keys; people and their claims (groups, amr) are set through its own API. Missing, it skips locally and fails
under CI=true (tests/services.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tenants.models import Tenant, User
from tenants.sso import services
from tenants.sso.models import IdentityProvider
from tenants.sso.tests.dnsmasq import mark_verified
from tests.services import require_module


@dataclass
class RealProvider:
    issuer: str

    def person(self, sub: str, **claims) -> None:
        """Set (or replace) what the provider says of a person: email, groups, amr, ..."""
        answer = requests.put(f"{self.issuer}/users/{sub}", json=claims, timeout=5)
        assert answer.status_code == 204, answer.text

    def authorize(self, authorize_url: str, sub: str) -> str:
        """Sign in at the provider as `sub` (its form), returning where it sends the browser back to."""
        assert authorize_url.startswith(self.issuer + "/oauth2/authorize"), authorize_url
        answer = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=5)
        assert answer.status_code == 302, answer.text[:500]
        return answer.headers["Location"]


@pytest.fixture
def oidc_provider() -> Iterator[RealProvider]:
    mock = require_module("oidc_provider_mock", "the oidc-provider-mock package (requirements-dev.txt)")
    with mock.run_server_in_thread() as server:
        yield RealProvider(issuer=f"http://localhost:{server.server_port}")


def configure(
    tenant: Tenant,
    actor: User,
    issuer: str,
    *,
    domains: tuple[str, ...] = ("acme.test",),
    group_roles: dict[str, str] | None = None,
    verified: bool = True,
    **values,
) -> IdentityProvider:
    """A provider of the tenant, configured through the service the admin console uses;
    its domains verified unless `verified` is False."""
    fields = {
        "name": "Acme ID",
        "issuer_url": issuer,
        "client_identifier": "quetzal-acme",
        "group_roles": group_roles if group_roles is not None else {"qz-admins": "admin", "qz-users": "member"},
        **values,
    }
    provider = services.save_provider(
        tenant=tenant, actor=actor, values=fields, domains=list(domains), client_secret="s3cret-of-acme"
    )
    return mark_verified(provider) if verified else provider


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
