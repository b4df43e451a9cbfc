"""Shared fixtures: three tenants (alice, bob, charlie), each with an owner, an admin and a member."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tenants.choices import Role
from tenants.models import Membership, Tenant, User
from tenants.resolution import SESSION_KEY
from tests.factories import PASSWORD, MembershipFactory, TenantFactory, UserFactory


@dataclass
class TenantWorld:
    tenant: Tenant
    owner: User
    admin: User
    member: User

    def membership(self, user: User) -> Membership:
        return Membership.objects.get(user=user, tenant=self.tenant)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Every test starts from an empty cache: rate limits and lockouts another test or run left must not leak in.

    (Sign-ins in one test file counted against allauth's per-address login limit in the next one.) Only the
    cache's own keys go: Celery's broker and the channel layer may share the Redis database.
    """
    from django.core.cache import caches  # settings are configured only once pytest-django has started
    from django.core.cache.backends.redis import RedisCache

    cache = caches["default"]  # the backend itself: `django.core.cache.cache` is a proxy no isinstance() sees through
    if not isinstance(cache, RedisCache):
        cache.clear()
        return
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=cache.make_key("*"), count=1000))
    if keys:
        client.delete(*keys)


# Hashing cost is not what these tests prove; MD5 keeps real logins fast.
FAST_PASSWORD_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = [FAST_PASSWORD_HASHER]


def make_world(slug: str) -> TenantWorld:
    tenant = TenantFactory(name=slug.capitalize(), slug=slug)
    people = {}
    for role in (Role.OWNER, Role.ADMIN, Role.MEMBER):
        user = UserFactory(email=f"{role}@{slug}.test")
        MembershipFactory(user=user, tenant=tenant, role=role)
        people[role] = user
    return TenantWorld(tenant=tenant, owner=people[Role.OWNER], admin=people[Role.ADMIN], member=people[Role.MEMBER])


@pytest.fixture
def alice(db) -> TenantWorld:
    return make_world("alice")


@pytest.fixture
def bob(db) -> TenantWorld:
    return make_world("bob")


@pytest.fixture
def charlie(db) -> TenantWorld:
    return make_world("charlie")


def login_client(user: User, tenant: Tenant | None = None, client_class=Client):
    """A client signed in as `user`, working in `tenant`."""
    client = client_class()
    client.force_login(user, backend="tenants.sso.backends.PasswordBackend")
    if tenant is not None:
        session = client.session
        session[SESSION_KEY] = tenant.pk
        session.save()
    return client


def api_client(user: User, tenant: Tenant | None = None) -> APIClient:
    return login_client(user, tenant, client_class=APIClient)


@pytest.fixture
def password() -> str:
    return PASSWORD
