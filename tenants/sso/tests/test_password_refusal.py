"""A provider-only domain's people have no Quetzal password: no password backend signs them in, none is reset."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.backends import ModelBackend
from django.core import mail
from django.test import Client, RequestFactory
from django.utils.module_loading import import_string

from tenants.sso.backends import DirectoryBackend, RefusesPasswordsOfSsoDomains
from tenants.sso.choices import DomainStatus
from tenants.sso.tests.provider import configure
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _password_backends() -> list[type]:
    """Every configured backend that checks a Quetzal password (the directory's checks the directory's)."""
    from allauth.account.auth_backends import AuthenticationBackend

    classes = [import_string(path) for path in settings.AUTHENTICATION_BACKENDS]
    return [c for c in classes if issubclass(c, (ModelBackend, AuthenticationBackend)) and c is not DirectoryBackend]


def test_every_password_backend_refuses_the_passwords_of_provider_only_domains():
    backends = _password_backends()
    assert len(backends) >= 2  # Django's (the admin's sign-in) and allauth's (the portal's)
    assert [c.__name__ for c in backends if not issubclass(c, RefusesPasswordsOfSsoDomains)] == []


@pytest.fixture
def pat(alice):
    member = alice.member
    member.email = "pat@acme.test"
    member.save()
    return member


def test_a_correct_password_of_a_provider_only_domain_signs_nobody_in(alice, pat, oidc_provider):
    request = RequestFactory().post("/accounts/login/")
    assert authenticate(request, email="pat@acme.test", password=PASSWORD) == pat  # before the provider
    configure(alice.tenant, alice.owner, oidc_provider.issuer)
    # Whichever backend and spelling a page uses
    assert authenticate(request, email="pat@acme.test", password=PASSWORD) is None
    assert authenticate(request, username="pat@acme.test", password=PASSWORD) is None
    # Other domains' people keep theirs
    assert authenticate(request, email=alice.admin.email, password=PASSWORD) == alice.admin


def _grandfathered(provider):
    """Given: the provider's domains were routed before verification existed (what migration 0003 makes of them)."""
    provider.domains.update(status=DomainStatus.PENDING, grandfathered=True, verified_at=None)
    return provider


def test_an_operator_keeps_the_password_and_its_reset_on_a_domain_nobody_verified(alice, pat, oidc_provider):
    # Given pat is an operator, and alice's tenant routes acme.test since before verification existed (it routes,
    # so pat's colleagues sign in through the provider, but nobody proved acme.test is alice's)
    pat.is_staff = True
    pat.save()
    _grandfathered(configure(alice.tenant, alice.owner, oidc_provider.issuer, verified=False))
    request = RequestFactory().post("/admin/login/")
    # Then the tenant's word does not take the operator's password away, nor its reset
    assert authenticate(request, username="pat@acme.test", password=PASSWORD) == pat
    assert Client().post("/accounts/password/reset/", {"email": "pat@acme.test"}).status_code == 302
    assert [m.to for m in mail.outbox] == [["pat@acme.test"]]
    # While a non-operator of the same grandfathered domain has no Quetzal password (existing tenants work as before)
    pat.is_staff = False
    pat.save()
    assert authenticate(request, username="pat@acme.test", password=PASSWORD) is None


def test_an_operator_of_a_verified_provider_only_domain_signs_in_through_the_provider_too(alice, pat, oidc_provider):
    # Given alice's tenant proved in DNS that acme.test is hers, and routes it with password sign-in off
    pat.is_staff = True
    pat.save()
    configure(alice.tenant, alice.owner, oidc_provider.issuer)
    # Then the domain's owner decides for the operator too: no password sign-in, no reset mail
    assert authenticate(RequestFactory().post("/admin/login/"), username="pat@acme.test", password=PASSWORD) is None
    refused = Client().post("/accounts/password/reset/", {"email": "pat@acme.test"})
    assert "change your password there" in refused.content.decode() and mail.outbox == []
    # And an operator outside every routed domain (the break-glass account) keeps theirs
    alice.admin.is_staff = True
    alice.admin.save()
    assert authenticate(RequestFactory().post("/admin/login/"), username=alice.admin.email, password=PASSWORD)


def test_an_unverified_domain_takes_no_password_away(alice, pat, oidc_provider):
    # Given alice's tenant added acme.test but has not verified it
    configure(alice.tenant, alice.owner, oidc_provider.issuer, verified=False)
    # Then pat still signs in with the password, and may reset it
    assert authenticate(RequestFactory().post("/accounts/login/"), email="pat@acme.test", password=PASSWORD) == pat
    assert Client().post("/accounts/password/reset/", {"email": "pat@acme.test"}).status_code == 302


def test_it_sends_no_reset_mail_to_a_provider_only_address(alice, pat, oidc_provider):
    configure(alice.tenant, alice.owner, oidc_provider.issuer)
    refused = Client().post("/accounts/password/reset/", {"email": "pat@acme.test"})
    assert refused.status_code == 200
    assert "Alice signs you in through Acme ID: change your password there" in refused.content.decode()
    assert mail.outbox == []
    # While an address of another domain gets its reset mail
    sent = Client().post("/accounts/password/reset/", {"email": alice.admin.email})
    assert sent.status_code == 302 and [m.to for m in mail.outbox] == [[alice.admin.email]]


def test_it_resets_the_password_where_the_tenant_still_allows_one(alice, pat, oidc_provider):
    configure(alice.tenant, alice.owner, oidc_provider.issuer, allow_password=True)
    assert Client().post("/accounts/password/reset/", {"email": "pat@acme.test"}).status_code == 302
    assert [m.to for m in mail.outbox] == [["pat@acme.test"]]
