"""Operators see every tenant's email domains in Django's admin and may look a record up again; nothing else."""

from __future__ import annotations

import uuid

import pytest

from tenants.models import AuditEvent, User
from tenants.sso.choices import DomainStatus
from tenants.sso.models import EmailDomain
from tenants.sso.tests.provider import configure
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db

LIST = "/admin/sso/emaildomain/"
CHALLENGE = "_quetzal-challenge.acme.test"


@pytest.fixture
def operator():
    user = User.objects.create_superuser(email=f"op-{uuid.uuid4().hex[:6]}@example.test", password="x" * 12)
    return user, login_client(user)


def test_it_lists_every_tenants_claims_with_their_state(operator, alice, bob, dns):
    _, client = operator
    configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False)
    configure(bob.tenant, bob.admin, "https://id.bob.test", domains=("bob.test",))
    page = client.get(LIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert "acme.test" in html and "bob.test" in html
    assert alice.tenant.name in html and bob.tenant.name in html
    # Read-only: no add, no edit form, no delete for an operator either
    assert client.get(f"{LIST}add/").status_code == 403
    domain = EmailDomain.objects.get(domain="acme.test")
    assert client.post(f"{LIST}{domain.pk}/delete/", {"post": "yes"}).status_code == 403
    assert EmailDomain.objects.filter(pk=domain.pk).exists()


def test_the_operator_looks_a_record_up_again_through_the_tenants_own_check(operator, alice, dns):
    user, client = operator
    configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False)
    domain = EmailDomain.objects.get(domain="acme.test")
    dns.publish(CHALLENGE, domain.record_value)
    # When the operator runs the action on it
    answer = client.post(LIST, {"action": "check_now", "_selected_action": [domain.pk]}, follow=True)
    # Then the record was read, the domain is verified and the page says so
    assert answer.status_code == 200
    assert "Checked 1 domain(s): 1 verified." in answer.content.decode()
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED and domain.last_checked_at is not None
    # And the tenant's audit log says who did it
    assert AuditEvent.objects.get(tenant=alice.tenant, action="sso.domain.verified").actor == user


def test_a_tenant_admin_who_is_not_an_operator_cannot_see_the_list(alice):
    assert login_client(alice.admin, alice.tenant).get(LIST).status_code == 302  # to the admin's login
