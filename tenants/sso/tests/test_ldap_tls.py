"""An LDAP provider's own CA: the only trust anchor of its directory's TLS (ldaps:// and StartTLS), for sign-in and
for the connection test, against a real slapd whose certificate a private CA issued."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.models import Membership, User
from tenants.sso import services
from tenants.sso.tests.certificates import make_ca
from tenants.sso.tests.slapd import BASE, PASSWORDS, configure_ldap
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db

PAGE = "/accounts/sso/password/"


def _sign_in(email: str, password: str):
    client = Client()
    answer = client.post(PAGE, {"login": email, "password": password, "next": "/"}, REMOTE_ADDR="198.51.100.7")
    return answer, client


def _test_connection(client: Client, provider) -> str:
    return client.post(f"/manage/sign-in/{provider.pk}/test/", follow=True).content.decode()


def test_it_signs_in_and_tests_the_connection_over_tls_trusting_the_providers_ca(alice, slapd):
    admin = login_client(alice.admin, alice.tenant)
    # Given alice's directory is on ldaps:// with a certificate her own CA issued, and she gave Quetzal that CA
    tls = configure_ldap(alice.tenant, alice.owner, slapd.ldaps_uri, ldap_ca_certificate=slapd.ca_pem)
    # Then the connection test reaches it over TLS
    answer = _test_connection(admin, tls)
    assert f"Connected: {slapd.ldaps_uri} answers, the bind DN signs in, ou=people,{BASE}" in answer
    assert "Over TLS, its certificate issued by the CA you gave." in answer
    # And Ana signs in with her directory password, as an admin from her group
    landed, client = _sign_in("ana@acme.test", PASSWORDS["ana"])
    assert landed.status_code == 302 and landed["Location"] == "/", landed.content.decode()[:2000]
    ana = User.objects.get(email="ana@acme.test")
    assert client.session["_auth_user_id"] == str(ana.pk) and Membership.objects.get(user=ana).role == "admin"
    tls.refresh_from_db()
    assert not tls.last_error
    # And StartTLS on the ldap:// port trusts the same CA, for the test and for Ben's sign-in
    services.delete_provider(provider=tls, actor=alice.owner)
    start = configure_ldap(alice.tenant, alice.owner, slapd.uri, ldap_ca_certificate=slapd.ca_pem, ldap_start_tls=True)
    assert "Over TLS (StartTLS), its certificate issued by the CA you gave." in _test_connection(admin, start)
    landed, client = _sign_in("ben@acme.test", PASSWORDS["ben"])
    assert landed.status_code == 302 and "_auth_user_id" in client.session, landed.content.decode()[:2000]


def test_it_refuses_a_directory_whose_certificate_the_trusted_ca_did_not_issue(alice, slapd):
    admin = login_client(alice.admin, alice.tenant)
    other_ca = make_ca("Somebody Else's CA").pem
    cases = [
        ("ldaps, another CA", slapd.ldaps_uri, {"ldap_ca_certificate": other_ca}),
        ("ldaps, the system's CAs", slapd.ldaps_uri, {}),
        ("StartTLS, another CA", slapd.uri, {"ldap_ca_certificate": other_ca, "ldap_start_tls": True}),
        ("StartTLS, the system's CAs", slapd.uri, {"ldap_start_tls": True}),
    ]
    for case, uri, values in cases:
        provider = configure_ldap(alice.tenant, alice.owner, uri, **values)
        # The connection test says the certificate does not verify
        answer = _test_connection(admin, provider)
        assert "Connection failed (ldap_unreachable)" in answer, case
        assert "certificate verify failed" in answer.lower(), case
        # Sign-in fails cleanly: the "ask your admin" page, nobody signed in, nothing sent in the clear
        refused, client = _sign_in("ana@acme.test", PASSWORDS["ana"])
        page = refused.content.decode()
        assert refused.status_code == 502 and 'data-testid="sso-unavailable"' in page, case
        assert alice.owner.email in page and "_auth_user_id" not in client.session, case
        provider.refresh_from_db()
        assert "certificate verify failed" in provider.last_error.lower(), case
        services.delete_provider(provider=provider, actor=alice.owner)
    assert not User.objects.filter(email="ana@acme.test").exists()
