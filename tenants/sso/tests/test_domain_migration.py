"""Migration 0003 keeps the domains routed before verification existed working: grandfathered, each its own token."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tenants.sso import services
from tenants.sso.choices import DomainStatus
from tenants.sso.models import EmailDomain

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    return executor.migrate(targets or executor.loader.graph.leaf_nodes()).apps


def test_it_grandfathers_the_domains_routed_before_verification():
    # Given a database before domain verification, with two domains routed to a provider
    old = _migrate([("sso", "0002_ldap_providers")])
    tenant = old.get_model("tenants", "Tenant").objects.create(name="Upgrade", slug="upgrade")
    provider = old.get_model("sso", "IdentityProvider").objects.create(tenant=tenant, name="Up ID")
    for domain in ("up.test", "up-labs.test"):
        old.get_model("sso", "EmailDomain").objects.create(tenant=tenant, provider=provider, domain=domain)
    # When it migrates
    _migrate(None)
    # Then both still route (nobody signs in differently the day after), unverified, each with its own token
    rows = list(EmailDomain.objects.order_by("domain"))
    assert [(r.domain, r.status, r.grandfathered) for r in rows] == [
        ("up-labs.test", DomainStatus.PENDING, True),
        ("up.test", DomainStatus.PENDING, True),
    ]
    assert len({r.token for r in rows}) == 2 and all(len(r.token) >= 32 for r in rows)
    assert services.provider_for_email("pat@up.test").pk == provider.pk
    # And a staff account there keeps its password (grandfathered is not verified)
    assert services.password_refused("pat@up.test") is not None
    assert services.password_refused("pat@up.test", operator=True) is None
