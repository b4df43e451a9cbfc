"""The admin console's pages for an LDAP / Active Directory provider: configuring it, testing it, whose it is."""

from __future__ import annotations

import pytest

from quetzal.server import free_port
from tenants.models import AuditEvent
from tenants.sso import services
from tenants.sso.choices import ProviderKind
from tenants.sso.models import EmailDomain, IdentityProvider
from tenants.sso.tests.certificates import make_ca, self_signed_leaf
from tenants.sso.tests.slapd import BASE, SERVICE_DN, SERVICE_PASSWORD, configure_ldap
from tenants.sso.trust import BEGIN, MAX_PEM_BYTES
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db


def _form(uri: str, **overrides) -> dict[str, str]:
    return {
        "kind": "ldap",
        "name": "Acme Directory",
        "ldap_uri": uri,
        "ldap_bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PASSWORD,
        "ldap_user_base": f"ou=people,{BASE}",
        "ldap_user_filter": "(&(objectClass=inetOrgPerson)(mail={email}))",
        "ldap_email_attribute": "mail",
        "ldap_group_attribute": "",
        "ldap_group_base": f"ou=groups,{BASE}",
        "ldap_group_filter": "(member={dn})",
        "email_domains": "acme.test",
        "group_roles_text": "qz-admins = admin\nqz-users = member",
        "mfa_policy": "trust_provider",
        "enabled": "on",
        **overrides,
    }


def test_it_adds_a_directory_with_its_bind_password_sealed(alice):
    admin = login_client(alice.admin, alice.tenant)
    page = admin.get("/manage/sign-in/").content.decode()
    assert 'data-kind="ldap"' in page and 'name="ldap_uri"' in page
    saved = admin.post("/manage/sign-in/", _form("ldaps://ldap.acme.test:636"))
    provider = IdentityProvider.objects.get()
    assert saved.status_code == 302 and saved["Location"] == f"/manage/sign-in/{provider.pk}/"
    assert provider.kind == ProviderKind.LDAP and provider.tenant == alice.tenant
    assert provider.ldap_uri == "ldaps://ldap.acme.test:636" and provider.role_names()["qz-admins"] == "admin"
    assert list(EmailDomain.objects.values_list("domain", flat=True)) == ["acme.test"]
    # The bind password is sealed like a client secret, opens only through the service, and is never shown
    assert SERVICE_PASSWORD.encode() not in bytes(provider.client_secret_sealed)
    assert services.client_secret(provider) == SERVICE_PASSWORD
    page = admin.get(f"/manage/sign-in/{provider.pk}/").content.decode()
    assert SERVICE_PASSWORD not in page and "A bind password is stored" in page and "callback-url" not in page
    assert 'name="ldap_user_filter"' in page and 'name="issuer_url"' not in page
    # Saving without a password keeps it; a posted kind never turns it into an OpenID Connect provider
    again = admin.post(f"/manage/sign-in/{provider.pk}/", _form("ldap://ldap.acme.test", bind_password="", kind="oidc"))
    assert again.status_code == 302
    provider.refresh_from_db()
    assert provider.kind == ProviderKind.LDAP and services.client_secret(provider) == SERVICE_PASSWORD
    events = AuditEvent.objects.filter(tenant=alice.tenant, action="sso.provider.save")
    assert events.count() == 2 and all(SERVICE_PASSWORD not in str(e.data) for e in events)
    latest = events.order_by("pk").last()
    assert latest.data["kind"] == "ldap" and latest.data["issuer"] == "ldap://ldap.acme.test"
    # The list says which kind it is
    assert "LDAP · ldap://ldap.acme.test" in admin.get("/manage/sign-in/").content.decode()


def test_it_refuses_bad_directory_settings_with_clear_errors(alice):
    admin = login_client(alice.admin, alice.tenant)
    cases = {
        "ldap_uri": [
            ("https://ldap.acme.test", "Write it as ldap://host[:port] or ldaps://host[:port]."),
            ("ldap://ldap.acme.test/dc=acme,dc=test", "Only the scheme, host and port"),
            ("ldap://" + "a" * 300 + ".test", "Ensure this value has at most 255 characters"),
        ],
        "ldap_bind_dn": [("quetzal", "Not a distinguished name")],
        "ldap_user_base": [("people", "Not a distinguished name")],
        "ldap_user_filter": [
            ("(mail=ana@acme.test)", "Put {email} or {username} where the person"),
            ("(mail={mail})", "Unknown placeholder {mail}"),
            ("(mail={email}", "Not a valid LDAP filter"),
            ("mail={email}", "Not a valid LDAP filter"),
        ],
        "ldap_group_filter": [("(member=x)", "Put {dn} or {username} where the person")],
        "ldap_email_attribute": [("mail;binary", "An attribute name")],
        "group_roles_text": [("qz-admins = root", "Line 1: write it as group = owner, admin or member.")],
    }
    for field, attempts in cases.items():
        for value, message in attempts:
            answer = admin.post("/manage/sign-in/", _form("ldap://ldap.acme.test", **{field: value}))
            assert answer.status_code == 400 and message in answer.content.decode(), (field, value)
    # A new directory needs the bind DN's password; mapped groups need a place to read groups from
    answer = admin.post("/manage/sign-in/", _form("ldap://ldap.acme.test", bind_password=""))
    assert answer.status_code == 400 and "Enter the bind DN&#x27;s password." in answer.content.decode()
    answer = admin.post("/manage/sign-in/", _form("ldap://ldap.acme.test", ldap_group_base="", ldap_group_attribute=""))
    assert answer.status_code == 400 and "set a group attribute or a group search base" in answer.content.decode()
    assert not IdentityProvider.objects.exists()


def test_it_tests_the_directory_connection_and_says_what_is_wrong(alice, bob, slapd):
    admin = login_client(alice.admin, alice.tenant)
    good = configure_ldap(alice.tenant, alice.owner, slapd.uri)
    answer = admin.post(f"/manage/sign-in/{good.pk}/test/", follow=True).content.decode()
    assert f"Connected: {slapd.uri} answers, the bind DN signs in, ou=people,{BASE} and ou=groups,{BASE} found." in (
        answer
    )
    # The service account's password is wrong
    wrong = configure_ldap(alice.tenant, alice.owner, slapd.uri, bind_password="nope", domains=("b.test",))
    answer = admin.post(f"/manage/sign-in/{wrong.pk}/test/", follow=True).content.decode()
    assert "Connection failed (ldap_bind_refused): The server refused the bind DN or its password" in answer
    # A search base the server does not have
    base = configure_ldap(alice.tenant, alice.owner, slapd.uri, domains=("c.test",), ldap_user_base=f"ou=staff,{BASE}")
    answer = admin.post(f"/manage/sign-in/{base.pk}/test/", follow=True).content.decode()
    assert f"Connection failed (ldap_no_base): The search base ou=staff,{BASE} does not exist" in answer
    # Nothing listening there; the admin reads it on the page afterwards too
    closed = configure_ldap(alice.tenant, alice.owner, f"ldap://127.0.0.1:{free_port()}", domains=("d.test",))
    answer = admin.post(f"/manage/sign-in/{closed.pk}/test/", follow=True).content.decode()
    assert "Connection failed (ldap_unreachable): Could not reach 127.0.0.1:" in answer
    assert 'data-testid="last-error"' in answer
    # Over ldaps:// the server's certificate must verify: slapd's self-signed one does not
    tls = configure_ldap(alice.tenant, alice.owner, slapd.ldaps_uri, domains=("e.test",))
    answer = admin.post(f"/manage/sign-in/{tls.pk}/test/", follow=True).content.decode()
    assert "Connection failed (ldap_unreachable)" in answer and "certificate verify failed" in answer.lower()
    # Another tenant's directory is not alice's to test, see or change
    theirs = configure_ldap(bob.tenant, bob.owner, slapd.uri, domains=("bob.test",))
    assert admin.post(f"/manage/sign-in/{theirs.pk}/test/").status_code == 404
    assert admin.get(f"/manage/sign-in/{theirs.pk}/").status_code == 404
    assert admin.post(f"/manage/sign-in/{theirs.pk}/", _form("ldap://evil.test")).status_code == 404
    theirs.refresh_from_db()
    assert theirs.ldap_uri == slapd.uri and not theirs.last_error


def test_it_checks_the_ca_certificate_before_saving_it(alice):
    admin = login_client(alice.admin, alice.tenant)
    ca = make_ca()
    cases = [
        ("not a certificate", "Not a PEM certificate: paste the text that starts with -----BEGIN CERTIFICATE-----."),
        (f"{BEGIN}\nbm90IGRlcg==\n-----END CERTIFICATE-----", "Not a readable PEM certificate"),
        (self_signed_leaf().pem, "CN=ldap.acme.test is not a CA certificate"),
        (make_ca("Old CA", days=1, started_days_ago=3).pem, "CN=Old CA expired on "),
        (ca.pem + ca.key_pem, "This is a private key: paste only the CA&#x27;s certificate"),
        (ca.pem * (MAX_PEM_BYTES // len(ca.pem) + 1), "Ensure this value has at most 65536 characters"),
    ]
    for text, message in cases:
        answer = admin.post("/manage/sign-in/", _form("ldaps://ldap.acme.test", ldap_ca_certificate=text))
        assert answer.status_code == 400 and message in answer.content.decode(), message
    # A CA is for TLS: not for a plain ldap:// server; and StartTLS is not for ldaps://
    answer = admin.post("/manage/sign-in/", _form("ldap://ldap.acme.test", ldap_ca_certificate=ca.pem))
    assert answer.status_code == 400 and "use an ldaps:// server or turn StartTLS on" in answer.content.decode()
    answer = admin.post("/manage/sign-in/", _form("ldaps://ldap.acme.test", ldap_start_tls="on"))
    assert answer.status_code == 400 and "StartTLS is for ldap://" in answer.content.decode()
    assert not IdentityProvider.objects.exists()
    # A CA certificate, with text around it, is kept as the certificate alone, and the page says what it trusts
    pasted = f"Acme's CA, from the wiki:\n{ca.pem}"
    answer = admin.post(
        "/manage/sign-in/", _form("ldap://ldap.acme.test", ldap_ca_certificate=pasted, ldap_start_tls="on")
    )
    provider = IdentityProvider.objects.get()
    assert answer.status_code == 302 and provider.ldap_ca_certificate == ca.pem and provider.ldap_start_tls
    page = admin.get(f"/manage/sign-in/{provider.pk}/").content.decode()
    assert 'data-testid="ldap-ca"' in page and "CN=Acme Internal CA, valid until" in page
