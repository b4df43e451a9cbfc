"""A tenant's budget of Verify lookups (SSO_VERIFY_RATE_LIMIT per SSO_VERIFY_WINDOW_S), counted in Redis: over it,
the page says so and no DNS query leaves; another tenant's budget is its own."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client

from tenants.api import throttling
from tenants.models import AuditEvent
from tenants.sso.models import EmailDomain
from tenants.sso.tests.provider import configure
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db

CHALLENGE = "_quetzal-challenge.acme.test"
REFUSED = "Your organisation has looked up 10 DNS records in 60 seconds, the most it may: try again in"


def _verify(client: Client, domain: EmailDomain) -> str:
    return client.post(f"/manage/sign-in/domains/{domain.pk}/verify/", follow=True).content.decode()


def test_it_refuses_the_eleventh_verify_in_a_minute_without_a_lookup(alice, bob, dns, settings):
    settings.SSO_VERIFY_RATE_LIMIT, settings.SSO_VERIFY_WINDOW_S = 10, 60
    mine = configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False).domains.get()
    theirs = configure(bob.tenant, bob.admin, "https://id.bob.test", domains=("bob.test",), verified=False)
    admin = login_client(alice.admin, alice.tenant)
    # Given alice's admins pressed Verify ten times within the minute (each one a lookup dnsmasq answered)
    for _ in range(10):
        assert f"There is no DNS name {CHALLENGE} (NXDOMAIN)." in _verify(admin, mine)
    mine.refresh_from_db()
    checked_at, checks = mine.last_checked_at, AuditEvent.objects.filter(action="sso.domain.check_failed").count()
    # When one presses it an eleventh time, Quetzal asking a nameserver that records what reaches it
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.setblocking(False)
        settings.SSO_DNS_NAMESERVER = listener.getsockname()
        page = _verify(admin, mine)
        # Then the page says why (the panel still shows the last lookup's answer), and no query left
        assert REFUSED in page
        with pytest.raises(BlockingIOError):
            listener.recv(512)
    # And nothing was checked or audited
    mine.refresh_from_db()
    assert mine.last_checked_at == checked_at
    assert AuditEvent.objects.filter(action="sso.domain.check_failed").count() == checks
    # And bob's tenant still has its whole budget: its Verify is looked up
    settings.SSO_DNS_NAMESERVER = dns.nameserver
    page = _verify(login_client(bob.admin, bob.tenant), theirs.domains.get())
    assert "There is no DNS name _quetzal-challenge.bob.test (NXDOMAIN)." in page and REFUSED not in page


def test_the_budget_holds_when_many_verify_at_once(alice, bob):
    # Twenty spends of alice's budget of ten at the same moment, from threads with their own Redis connections
    bucket = throttling.tenant_bucket("sso-verify", alice.tenant.pk)
    with ThreadPoolExecutor(max_workers=8) as pool:
        spent = list(pool.map(lambda _: throttling.spend(bucket, limit=10, window=60), range(20)))
    # Exactly ten get through, whatever the interleaving; bob's bucket is untouched
    assert sum(s.allowed for s in spent) == 10 and sorted(s.used for s in spent) == list(range(1, 21))
    other = throttling.spend(throttling.tenant_bucket("sso-verify", bob.tenant.pk), limit=10, window=60)
    assert other.allowed and other.used == 1
