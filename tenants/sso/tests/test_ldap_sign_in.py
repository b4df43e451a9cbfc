"""Signing in with a directory password through a tenant's LDAP provider, against a real slapd (Debian's).

The whole path runs for real: the email-first page sends the address to our password page, Quetzal binds as the
service account, searches the person, binds as them with their password, searches their groups and provisions them.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from quetzal.server import free_port
from tenants.choices import Role
from tenants.models import AuditEvent, Membership, User
from tenants.resolution import SESSION_KEY
from tenants.sso import services
from tenants.sso.models import DirectoryAccount
from tenants.sso.tests.slapd import PASSWORDS, configure_ldap
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

PAGE = "/accounts/sso/password/"
MISMATCH = "The email address and/or password you specified are not correct."


def _password(client: Client, email: str, password: str, next_url: str = "/", address: str = "198.51.100.7"):
    """A real POST of the directory password page from `address`."""
    return client.post(PAGE, {"login": email, "password": password, "next": next_url}, REMOTE_ADDR=address)


def _signed_in_as(client: Client, email: str) -> bool:
    user = User.objects.filter(email=email).first()
    return user is not None and client.session.get("_auth_user_id") == str(user.pk)


def test_it_signs_a_new_person_in_with_their_directory_password_and_the_mapped_role(alice, slapd):
    # Given alice's tenant routes acme.test to its directory, where Ana is in qz-admins
    idp = configure_ldap(alice.tenant, alice.owner, slapd.uri)
    client = Client()
    # When Ana enters her address on the email-first sign-in page
    started = client.post("/accounts/login/?next=/desktops/", {"login": "ana@acme.test", "password": ""})
    # Then she is sent to Quetzal's own password page for her directory, her address and destination carried
    assert started.status_code == 302 and urlsplit(started["Location"]).path == PAGE
    assert {k: v[0] for k, v in parse_qs(urlsplit(started["Location"]).query).items()} == {
        "login": "ana@acme.test",
        "next": "/desktops/",
    }
    page = client.get(started["Location"]).content.decode()
    assert 'data-testid="ldap-login-form"' in page and "Acme Directory" in page and 'value="ana@acme.test"' in page
    # And when she types her directory password there
    landed = _password(client, "ana@acme.test", PASSWORDS["ana"], next_url="/desktops/")
    # Then she is signed in, in alice's tenant, as an admin (from her group), with no Quetzal password
    assert landed.status_code == 302 and landed["Location"] == "/desktops/", landed.content.decode()[:2000]
    ana = User.objects.get(email="ana@acme.test")
    assert _signed_in_as(client, "ana@acme.test") and client.session[SESSION_KEY] == alice.tenant.pk
    assert Membership.objects.get(user=ana).role == Role.ADMIN and not ana.has_usable_password()
    assert DirectoryAccount.objects.get(user=ana).dn == "uid=ana,ou=people,dc=acme,dc=test"
    assert client.get("/").status_code == 200
    # And the audit log has her joining with her groups, and signing in through the directory
    joined = AuditEvent.objects.get(tenant=alice.tenant, action="sso.member.join")
    assert joined.data["role"] == "admin" and "qz-admins" in joined.data["groups"]
    assert AuditEvent.objects.get(tenant=alice.tenant, action="login.sso").data["provider_id"] == idp.pk
    # And Ben, in qz-users, who typed his directory password on the first page, is sent on without it
    ben = Client()
    first = ben.post("/accounts/login/", {"login": "ben@acme.test", "password": PASSWORDS["ben"]})
    assert first.status_code == 302 and urlsplit(first["Location"]).path == PAGE
    assert PASSWORDS["ben"] not in first["Location"] and "_auth_user_id" not in ben.session
    # where his password makes him a member, and an outside `next` is not followed
    landed = _password(ben, "ben@acme.test", PASSWORDS["ben"], next_url="https://evil.test/")
    assert landed.status_code == 302 and landed["Location"] == "/"
    assert Membership.objects.get(user__email="ben@acme.test", tenant=alice.tenant).role == Role.MEMBER


def test_it_refuses_a_wrong_password_like_a_quetzal_one_and_locks_the_account_out(alice, slapd, settings):
    settings.AXES_FAILURE_LIMIT = 3
    configure_ldap(alice.tenant, alice.owner, slapd.uri)
    assert _password(Client(), "ana@acme.test", PASSWORDS["ana"]).status_code == 302  # Ana has an account now
    # The message a wrong Quetzal password gets
    local = Client().post("/accounts/login/", {"login": alice.admin.email, "password": "wrong password"})
    assert MISMATCH in local.content.decode()
    # A wrong directory password, and an address the directory does not know: the same words, nobody signed in
    for email, password in (("ana@acme.test", "not-her-password"), ("nobody@acme.test", PASSWORDS["ana"])):
        client = Client()
        refused = _password(client, email, password)
        assert refused.status_code == 400 and MISMATCH in refused.content.decode(), email
        assert "_auth_user_id" not in client.session
    # An empty password is never sent to the directory (it would be an anonymous bind, which slapd accepts)
    empty = _password(Client(), "ana@acme.test", "")
    assert empty.status_code == 400 and "_auth_user_id" not in empty.wsgi_request.session
    # The failure is in alice's audit log, as a password failure is
    assert AuditEvent.objects.filter(
        tenant=alice.tenant, action="login.failed", target_id=str(User.objects.get(email="ana@acme.test").pk)
    ).exists()
    # Two more wrong passwords from the same address lock Ana out: even her right password is refused then
    _password(Client(), "ana@acme.test", "still-wrong")
    locked = _password(Client(), "ana@acme.test", "wrong-again")
    assert locked.status_code == 429 and 'data-testid="locked-out"' in locked.content.decode()
    client = Client()
    right = _password(client, "ANA@acme.test", PASSWORDS["ana"])
    assert right.status_code == 429 and "_auth_user_id" not in client.session


def test_it_follows_the_directory_groups_at_every_sign_in(alice, slapd):
    configure_ldap(alice.tenant, alice.owner, slapd.uri)
    assert _password(Client(), "ben@acme.test", PASSWORDS["ben"]).status_code == 302
    ben = User.objects.get(email="ben@acme.test")
    # Given Ben was taken out of qz-users in the directory
    slapd.remove_from_group("ben", "qz-users")
    client = Client()
    refused = _password(client, "ben@acme.test", PASSWORDS["ben"])
    # Then his next sign-in is refused with whom to ask, and his membership is gone
    assert refused.status_code == 403 and 'data-code="sso_no_group"' in refused.content.decode()
    assert alice.owner.email in refused.content.decode() and "_auth_user_id" not in client.session
    assert not Membership.objects.filter(user=ben, tenant=alice.tenant).exists()
    assert AuditEvent.objects.filter(tenant=alice.tenant, action="sso.member.remove").exists()
    # Put in qz-admins, he signs in again as the same account (linked to his entry), now an admin
    slapd.add_to_group("ben", "qz-admins")
    assert _password(Client(), "ben@acme.test", PASSWORDS["ben"]).status_code == 302
    assert Membership.objects.get(user=ben, tenant=alice.tenant).role == Role.ADMIN
    # Moved from qz-admins to qz-users: his role follows at the next sign-in
    slapd.remove_from_group("ben", "qz-admins")
    slapd.add_to_group("ben", "qz-users")
    assert _password(Client(), "ben@acme.test", PASSWORDS["ben"]).status_code == 302
    assert Membership.objects.get(user=ben, tenant=alice.tenant).role == Role.MEMBER
    assert AuditEvent.objects.filter(tenant=alice.tenant, action="sso.member.role").exists()


def test_it_tells_the_person_whom_to_ask_when_the_directory_fails(alice, slapd):
    # A server nobody listens on
    down = configure_ldap(alice.tenant, alice.owner, f"ldap://127.0.0.1:{free_port()}")
    client = Client()
    answer = _password(client, "ana@acme.test", PASSWORDS["ana"])
    page = answer.content.decode()
    assert answer.status_code == 502 and 'data-testid="sso-unavailable"' in page
    assert alice.owner.email in page and alice.admin.email in page and "_auth_user_id" not in client.session
    down.refresh_from_db()
    assert "Could not reach" in down.last_error and down.last_error_at is not None
    # The directory answers but refuses the service account's password: the same page, the admin reads why
    services.delete_provider(provider=down, actor=alice.owner)
    wrong_bind = configure_ldap(alice.tenant, alice.owner, slapd.uri, bind_password="not-the-service-password")
    answer = _password(Client(), "ana@acme.test", PASSWORDS["ana"])
    assert answer.status_code == 502 and 'data-testid="sso-unavailable"' in answer.content.decode()
    wrong_bind.refresh_from_db()
    assert "refused the bind DN" in wrong_bind.last_error
    assert not User.objects.filter(email="ana@acme.test").exists()


def test_it_asks_for_quetzals_code_when_the_tenant_requires_two_factor(alice, slapd):
    idp = configure_ldap(alice.tenant, alice.owner, slapd.uri)
    alice.tenant.require_2fa = True
    alice.tenant.save()
    # No device yet: enrolment first (a directory says nothing of a second factor)
    client = Client()
    assert _password(client, "ana@acme.test", PASSWORDS["ana"]).status_code == 302
    assert client.get("/")["Location"] == "/accounts/2fa/setup/"
    # With a device: its code before anything else
    TOTPDevice.objects.create(user=User.objects.get(email="ana@acme.test"), name="phone", confirmed=True)
    client = Client()
    _password(client, "ana@acme.test", PASSWORDS["ana"])
    assert client.get("/")["Location"].startswith("/accounts/2fa/verify/")
    # The tenant stops requiring 2FA but the provider says always: Ben must still enrol
    alice.tenant.require_2fa = False
    alice.tenant.save()
    services.save_provider(
        tenant=alice.tenant,
        actor=alice.owner,
        values={"mfa_policy": "require_totp"},
        domains=["acme.test"],
        client_secret=None,
        provider=idp,
    )
    client = Client()
    _password(client, "ben@acme.test", PASSWORDS["ben"])
    assert client.get("/")["Location"] == "/accounts/2fa/setup/"


def test_it_uses_only_the_directory_of_the_tenant_that_routed_the_domain(alice, bob, slapd):
    # Alice routes acme.test to the real directory; bob routes bob.test to a directory that is down
    mine = configure_ldap(alice.tenant, alice.owner, slapd.uri, ldap_user_filter="(uid={username})")
    theirs = configure_ldap(bob.tenant, bob.owner, f"ldap://127.0.0.1:{free_port()}", domains=("bob.test",))
    # Ana's directory password typed with a bob.test address goes to bob's directory only
    answer = _password(Client(), "ana@bob.test", PASSWORDS["ana"])
    assert answer.status_code == 502 and bob.owner.email in answer.content.decode()
    assert alice.owner.email not in answer.content.decode()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert theirs.last_error and not mine.last_error
    assert not User.objects.filter(email="ana@bob.test").exists()
    # The typed name is escaped into the filter: "*" matches no uid (unescaped, (uid=*) would match everyone)
    wildcard = _password(Client(), "*@acme.test", PASSWORDS["ana"])
    assert wildcard.status_code == 400 and MISMATCH in wildcard.content.decode()
    # An entry of alice's directory whose mail is in bob's domain is not let in anywhere
    refused = _password(Client(), "mallory@acme.test", PASSWORDS["mallory"])
    assert refused.status_code == 403 and 'data-code="sso_wrong_domain"' in refused.content.decode()
    assert not User.objects.filter(email="ceo@bob.test").exists()
    # An account of bob's tenant whose address is in alice's domain is never taken over by alice's directory
    outsider = bob.member
    outsider.email = "ana@acme.test"
    outsider.save()
    taken = _password(Client(), "ana@acme.test", PASSWORDS["ana"])
    assert taken.status_code == 403 and 'data-code="sso_account_exists"' in taken.content.decode()
    assert not Membership.objects.filter(user=outsider, tenant=alice.tenant).exists()
    assert not DirectoryAccount.objects.exists()
    # The password page of an address without a directory goes back to the sign-in page
    assert Client().get(PAGE, {"login": alice.admin.email})["Location"] == "/accounts/login/"
    nothing = Client().post(PAGE, {"login": alice.admin.email, "password": PASSWORD})
    assert nothing.status_code == 302 and "_auth_user_id" not in nothing.wsgi_request.session
    # allauth's OpenID Connect URLs know nothing of a directory provider
    assert Client().post(f"/accounts/oidc/{mine.provider_id}/login/").status_code == 404


def test_it_reads_groups_from_an_attribute_of_the_entry_when_no_group_search_is_set(alice, slapd):
    # Given groups are read from an attribute holding group DNs (memberOf in Active Directory; seeAlso here)
    configure_ldap(alice.tenant, alice.owner, slapd.uri, ldap_group_base="", ldap_group_attribute="seeAlso")
    # Then Ana's qz-admins DN maps by its cn
    assert _password(Client(), "ana@acme.test", PASSWORDS["ana"]).status_code == 302
    assert Membership.objects.get(user__email="ana@acme.test").role == Role.ADMIN
    # And Ben, whose entry lists no group, is in no mapped group, though the group search would find him
    refused = _password(Client(), "ben@acme.test", PASSWORDS["ben"])
    assert refused.status_code == 403 and 'data-code="sso_no_group"' in refused.content.decode()
    assert not User.objects.filter(email="ben@acme.test").exists()
