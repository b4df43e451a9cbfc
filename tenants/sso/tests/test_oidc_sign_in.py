"""Signing in through a tenant's OpenID Connect provider, against a real provider server (oidc-provider-mock).

The whole code flow runs for real: Quetzal reads the provider's discovery, sends the browser to its authorization
page, exchanges the code at its token endpoint, reads userinfo and checks the signed ID token against its keys.
"""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialAccount
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.choices import Role
from tenants.models import AuditEvent, Membership, User
from tenants.resolution import SESSION_KEY
from tenants.sso import services
from tenants.sso.tests.provider import configure, path_and_query, query
from tests.factories import PASSWORD
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db


def _sign_in(client: Client, provider, email: str, sub: str, next_url: str = "/"):
    """Email first on the sign-in page, then the provider's page, then back: the answer of the callback."""
    started = client.post(f"/accounts/login/?next={next_url}", {"login": email, "password": ""})
    assert started.status_code == 302, started.content.decode()[:2000]
    back = provider.authorize(started["Location"], sub)
    return client.get(path_and_query(back))


def test_it_signs_a_new_person_in_and_makes_their_account_and_membership(alice, oidc_provider):
    # Given alice's tenant routes acme.test to its provider, which says Ana is in the admins group
    idp = configure(alice.tenant, alice.owner, oidc_provider.issuer)
    oidc_provider.person("ana", email="ana@acme.test", email_verified=True, groups=["qz-admins", "other"], name="Ana")
    client = Client()
    # When Ana enters her address on the sign-in page
    started = client.post("/accounts/login/", {"login": "ana@acme.test", "password": ""})
    # Then she is sent to the provider's authorization page, with Quetzal's callback and PKCE
    assert started.status_code == 302 and started["Location"].startswith(f"{oidc_provider.issuer}/oauth2/authorize")
    asked = query(started["Location"])
    assert asked["client_id"] == "quetzal-acme" and asked["response_type"] == "code"
    assert asked["redirect_uri"] == f"http://testserver/accounts/oidc/{idp.provider_id}/login/callback/"
    assert set(asked["scope"].split()) == {"openid", "email", "profile"} and asked["code_challenge_method"] == "S256"
    # And when she signs in there and comes back
    landed = client.get(path_and_query(oidc_provider.authorize(started["Location"], "ana")))
    # Then she is signed in, in alice's tenant, as an admin (from her groups)
    assert landed.status_code == 302 and landed["Location"] == "/", landed.content.decode()[:2000]
    ana = User.objects.get(email="ana@acme.test")
    assert client.session["_auth_user_id"] == str(ana.pk) and client.session[SESSION_KEY] == alice.tenant.pk
    assert Membership.objects.get(user=ana).role == Role.ADMIN and not ana.has_usable_password()
    # And the ID token was checked and kept: issued by the provider, for this client
    account = SocialAccount.objects.get(user=ana)
    assert account.provider == idp.provider_id and account.uid == "ana"
    assert account.extra_data["id_token"]["iss"] == oidc_provider.issuer
    assert account.extra_data["id_token"]["aud"] in ("quetzal-acme", ["quetzal-acme"])
    assert account.extra_data["userinfo"]["groups"] == ["qz-admins", "other"]
    # And the audit log has her joining and signing in, with the provider
    joined = AuditEvent.objects.get(tenant=alice.tenant, action="sso.member.join")
    assert joined.data["provider"] == "Acme ID" and joined.data["role"] == "admin"
    signed = AuditEvent.objects.get(tenant=alice.tenant, action="login.sso")
    assert signed.actor == ana and signed.data["provider_id"] == idp.pk and signed.data["provider_mfa"] is False
    # And the portal opens for her
    assert client.get("/").status_code == 200


def test_it_follows_the_groups_at_every_sign_in_and_removes_who_left_them(alice, oidc_provider):
    configure(alice.tenant, alice.owner, oidc_provider.issuer)
    oidc_provider.person("ben", email="ben@acme.test", groups=["qz-users"])
    assert _sign_in(Client(), oidc_provider, "ben@acme.test", "ben").status_code == 302
    ben = User.objects.get(email="ben@acme.test")
    assert Membership.objects.get(user=ben).role == Role.MEMBER
    # When the directory makes him an admin, his next sign-in makes him one
    oidc_provider.person("ben", email="ben@acme.test", groups=["qz-users", "qz-admins"])
    assert _sign_in(Client(), oidc_provider, "ben@acme.test", "ben").status_code == 302
    assert Membership.objects.get(user=ben).role == Role.ADMIN
    assert AuditEvent.objects.filter(action="sso.member.role", data__to="admin").exists()
    # When he leaves every mapped group, his next sign-in is refused and his membership is gone
    oidc_provider.person("ben", email="ben@acme.test", groups=["alumni"])
    client = Client()
    refused = _sign_in(client, oidc_provider, "ben@acme.test", "ben")
    assert refused.status_code == 403 and "_auth_user_id" not in client.session
    page = refused.content.decode()
    assert 'data-code="sso_no_group"' in page and alice.owner.email in page  # whom to ask
    assert not Membership.objects.filter(user=ben).exists()
    removed = AuditEvent.objects.get(action="sso.member.remove")
    assert removed.tenant == alice.tenant and removed.data["email"] == "ben@acme.test"
    assert AuditEvent.objects.filter(action="login.sso_refused", data__reason="sso_no_group").exists()


def test_it_refuses_a_new_person_in_no_mapped_group_without_making_an_account(alice, oidc_provider):
    configure(alice.tenant, alice.owner, oidc_provider.issuer)
    oidc_provider.person("cy", email="cy@acme.test", groups=["visitors"])
    refused = _sign_in(Client(), oidc_provider, "cy@acme.test", "cy")
    assert refused.status_code == 403 and 'data-code="sso_no_group"' in refused.content.decode()
    assert not User.objects.filter(email="cy@acme.test").exists()


def test_it_makes_everyone_a_member_when_no_group_is_mapped(alice, oidc_provider):
    configure(alice.tenant, alice.owner, oidc_provider.issuer, group_roles={})
    oidc_provider.person("di", email="di@acme.test")
    assert _sign_in(Client(), oidc_provider, "di@acme.test", "di").status_code == 302
    assert Membership.objects.get(user__email="di@acme.test", tenant=alice.tenant).role == Role.MEMBER


def test_it_routes_each_domain_to_its_own_tenants_provider(alice, bob, oidc_provider):
    # Given alice routes acme.test and bob routes bobco.test, each to a provider of their own (one server)
    configure(alice.tenant, alice.owner, oidc_provider.issuer, client_identifier="alice-client")
    configure(
        bob.tenant, bob.owner, oidc_provider.issuer, name="Bob SSO", domains=("bobco.test",), client_identifier="bob-c"
    )
    oidc_provider.person("eve", email="eve@bobco.test", groups=["qz-users"])
    client = Client()
    started = client.post("/accounts/login/", {"login": "Eve@BobCo.test", "password": ""})
    # Then bob's provider (its client) is asked, and eve lands in bob's tenant only
    assert query(started["Location"])["client_id"] == "bob-c"
    assert client.get(path_and_query(oidc_provider.authorize(started["Location"], "eve"))).status_code == 302
    assert list(Membership.objects.filter(user__email="eve@bobco.test").values_list("tenant", flat=True)) == [
        bob.tenant.pk
    ]


def test_it_refuses_an_address_the_provider_does_not_speak_for(alice, oidc_provider):
    # Given acme.test routes to alice's provider, which signs in someone of another domain
    configure(alice.tenant, alice.owner, oidc_provider.issuer)
    oidc_provider.person("mallory", email="ceo@bob.test", groups=["qz-admins"])
    refused = _sign_in(Client(), oidc_provider, "anyone@acme.test", "mallory")
    # Then nobody is signed in or made
    assert refused.status_code == 403 and 'data-code="sso_wrong_domain"' in refused.content.decode()
    assert not User.objects.filter(email="ceo@bob.test").exists()


def test_it_links_an_existing_member_and_never_takes_over_an_account_of_another_tenant(alice, bob, oidc_provider):
    configure(alice.tenant, alice.owner, oidc_provider.issuer)
    # A member of alice with a password account, now signing in through alice's provider: linked
    member = alice.member
    member.email = "member@acme.test"
    member.save()
    oidc_provider.person("m1", email="member@acme.test", groups=["qz-users"])
    assert _sign_in(Client(), oidc_provider, "member@acme.test", "m1").status_code == 302
    assert SocialAccount.objects.get(uid="m1").user == member
    # An account of bob's tenant whose address is in alice's routed domain: refused, left as it was
    outsider = bob.member
    outsider.email = "consultant@acme.test"
    outsider.save()
    oidc_provider.person("c1", email="consultant@acme.test", groups=["qz-admins"])
    refused = _sign_in(Client(), oidc_provider, "consultant@acme.test", "c1")
    assert refused.status_code == 403 and 'data-code="sso_account_exists"' in refused.content.decode()
    assert not SocialAccount.objects.filter(user=outsider).exists()
    assert not Membership.objects.filter(user=outsider, tenant=alice.tenant).exists()


def test_it_keeps_the_password_for_sso_domains_only_when_the_tenant_allows_it(alice, oidc_provider):
    member = alice.member
    member.email = "pat@acme.test"
    member.save()
    idp = configure(alice.tenant, alice.owner, oidc_provider.issuer)
    # Password sign-in not allowed: the password is refused with what to do instead
    refused = Client().post("/accounts/login/", {"login": "pat@acme.test", "password": PASSWORD})
    assert refused.status_code == 200 and "signs in through Acme ID" in refused.content.decode()
    # Allowed: the password works, and an empty one still goes to the provider
    services.save_provider(
        tenant=alice.tenant,
        actor=alice.owner,
        values={"allow_password": True},
        domains=["acme.test"],
        client_secret=None,
        provider=idp,
    )
    assert Client().post("/accounts/login/", {"login": "pat@acme.test", "password": PASSWORD}).status_code == 302
    assert Client().post("/accounts/login/", {"login": "pat@acme.test"})["Location"].startswith(oidc_provider.issuer)
    # Addresses of other domains still need their password
    other = Client().post("/accounts/login/", {"login": alice.admin.email, "password": ""})
    assert other.status_code == 200 and "Enter your password." in other.content.decode()


def test_it_trusts_the_providers_second_factor_or_asks_for_quetzals_code_as_told(alice, oidc_provider):
    idp = configure(alice.tenant, alice.owner, oidc_provider.issuer)
    alice.tenant.require_2fa = True
    alice.tenant.save()
    # The provider says it used a second factor and the tenant trusts it: no Quetzal code, no enrolment
    oidc_provider.person("fay", email="fay@acme.test", groups=["qz-users"], amr=["pwd", "mfa"])
    client = Client()
    assert _sign_in(client, oidc_provider, "fay@acme.test", "fay").status_code == 302
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.get(action="login.sso").data["provider_mfa"] is True
    # It says nothing of a second factor: the tenant's 2FA policy applies as for a password sign-in
    oidc_provider.person("fay", email="fay@acme.test", groups=["qz-users"])
    client = Client()
    _sign_in(client, oidc_provider, "fay@acme.test", "fay")
    assert client.get("/")["Location"] == "/accounts/2fa/setup/"
    # The tenant requires Quetzal's code as well: even with the provider's MFA, a person with a device enters it
    services.save_provider(
        tenant=alice.tenant,
        actor=alice.owner,
        values={"mfa_policy": "require_totp"},
        domains=["acme.test"],
        client_secret=None,
        provider=idp,
    )
    TOTPDevice.objects.create(user=User.objects.get(email="fay@acme.test"), name="phone", confirmed=True)
    oidc_provider.person("fay", email="fay@acme.test", groups=["qz-users"], amr=["pwd", "mfa"])
    client = Client()
    _sign_in(client, oidc_provider, "fay@acme.test", "fay")
    assert client.get("/")["Location"].startswith("/accounts/2fa/verify/")


def test_it_links_a_provider_account_only_by_signing_in_never_by_connecting_it(alice, oidc_provider):
    idp = configure(alice.tenant, alice.owner, oidc_provider.issuer)
    oidc_provider.person("ana", email="ana@acme.test", groups=["qz-admins"])
    # Alice's member, signed in with a password, asks allauth to connect Acme's provider to her account
    client = login_client(alice.member, alice.tenant)
    started = client.post(f"/accounts/oidc/{idp.provider_id}/login/", {"process": "connect"})
    assert started.status_code == 302
    refused = client.get(path_and_query(oidc_provider.authorize(started["Location"], "ana")))
    # Then nothing is connected to her account, and ana's identity is not hers
    assert refused.status_code == 403 and 'data-code="sso_connect"' in refused.content.decode()
    assert not SocialAccount.objects.exists()
