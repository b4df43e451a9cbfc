"""Signing in through a tenant's SAML 2.0 provider, against a real IdP (pysaml2's, tenants/sso/tests/saml_idp.py).

The whole Web Browser SSO profile runs for real: Quetzal reads the IdP's metadata from its URL, publishes its own
SP metadata (which the IdP trusts), sends an AuthnRequest over HTTP-Redirect, and checks the signed assertion the
IdP posts back to its ACS against the IdP's certificate.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import pytest
from allauth.socialaccount.models import SocialAccount
from django.test import Client
from lxml import etree
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from tenants.choices import Role
from tenants.models import AuditEvent, Membership, User
from tenants.resolution import SESSION_KEY
from tenants.sso.models import IdentityProvider
from tenants.sso.tests.provider import query
from tenants.sso.tests.saml_idp import AUTHN_METHODS, GROUPS, NAME, configure_saml

pytestmark = pytest.mark.django_db
MD = "urn:oasis:names:tc:SAML:2.0:metadata"


def browser() -> Client:
    """A test client that sends a Host header, as every browser does (python3-saml builds the URLs it checks the
    answer's Destination and Recipient against from it)."""
    return Client(HTTP_HOST="testserver")


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _sign_in(client: Client, idp, email: str, name: str, *, change=None):
    """Email first, the IdP's sign-in, its form posted to Quetzal's ACS (after `change` altered the XML, as an
    attacker between the two would): the answer of the ACS's finish."""
    started = client.post("/accounts/login/", {"login": email, "password": ""})
    assert started.status_code == 302, started.content.decode()[:2000]
    action, fields = idp.sign_in(started["Location"], name)
    if change is not None:
        xml = base64.b64decode(fields["SAMLResponse"]).decode()
        changed = change(xml)
        assert changed != xml
        fields["SAMLResponse"] = base64.b64encode(changed.encode()).decode()
    posted = client.post(_path(action), fields)
    assert posted.status_code == 302, posted.content.decode()[:2000]
    return client.get(posted["Location"])


def test_it_signs_a_new_person_in_through_the_idp_and_makes_their_membership(alice, saml_idp):
    # Given alice's tenant routes acme.test to its SAML IdP, which says Ana is in the admins group
    provider = configure_saml(alice.tenant, alice.owner, saml_idp)
    saml_idp.person("ana", email="ana@acme.test", groups=("qz-admins", "other"), **{NAME: ["Ana Admin"]})
    client = browser()
    # When Ana enters her address on the sign-in page, she is sent to the IdP with an AuthnRequest
    started = client.post("/accounts/login/", {"login": "ana@acme.test", "password": ""})
    assert started.status_code == 302 and started["Location"].startswith(saml_idp.sso_url + "?")
    assert "SAMLRequest" in query(started["Location"])
    # And when she signs in there, the IdP posts its signed answer to Quetzal's ACS
    action, fields = saml_idp.sign_in(started["Location"], "ana")
    assert action == f"http://testserver/accounts/saml/{provider.provider_id}/acs/"
    assert b"<ds:Signature" in base64.b64decode(fields["SAMLResponse"]) or b"Signature" in base64.b64decode(
        fields["SAMLResponse"]
    )
    finished = client.get(client.post(_path(action), fields)["Location"])
    # Then she is signed in, in alice's tenant, as an admin (from her groups), with the IdP's name for her
    assert finished.status_code == 302 and finished["Location"] == "/", finished.content.decode()[:2000]
    ana = User.objects.get(email="ana@acme.test")
    assert client.session["_auth_user_id"] == str(ana.pk) and client.session[SESSION_KEY] == alice.tenant.pk
    assert Membership.objects.get(user=ana).role == Role.ADMIN and not ana.has_usable_password()
    assert ana.full_name == "Ana Admin"
    account = SocialAccount.objects.get(user=ana)
    assert account.provider == provider.provider_id and account.extra_data["attributes"][GROUPS] == [
        "qz-admins",
        "other",
    ]
    # And the audit log has her joining and signing in, with the provider
    joined = AuditEvent.objects.get(tenant=alice.tenant, action="sso.member.join")
    assert joined.data["provider"] == "Acme SAML" and joined.data["role"] == "admin"
    signed = AuditEvent.objects.get(tenant=alice.tenant, action="login.sso")
    assert signed.actor == ana and signed.data["provider_id"] == provider.pk and signed.data["provider_mfa"] is False
    assert client.get("/").status_code == 200


def test_it_follows_the_groups_at_every_sign_in_and_removes_who_left_them(alice, saml_idp):
    configure_saml(alice.tenant, alice.owner, saml_idp)
    saml_idp.person("ben", email="ben@acme.test", groups=("qz-users",))
    assert _sign_in(browser(), saml_idp, "ben@acme.test", "ben").status_code == 302
    ben = User.objects.get(email="ben@acme.test")
    assert Membership.objects.get(user=ben).role == Role.MEMBER
    # Made an admin in the directory: his next sign-in makes him one
    saml_idp.person("ben", email="ben@acme.test", groups=("qz-users", "qz-admins"))
    assert _sign_in(browser(), saml_idp, "ben@acme.test", "ben").status_code == 302
    assert Membership.objects.get(user=ben).role == Role.ADMIN
    # Removed from every mapped group: his next sign-in is refused and the membership is gone
    saml_idp.person("ben", email="ben@acme.test", groups=("alumni",))
    client = browser()
    refused = _sign_in(client, saml_idp, "ben@acme.test", "ben")
    assert refused.status_code == 403 and "_auth_user_id" not in client.session
    page = refused.content.decode()
    assert 'data-code="sso_no_group"' in page and alice.owner.email in page
    assert not Membership.objects.filter(user=ben).exists()
    assert AuditEvent.objects.get(action="sso.member.remove").data["email"] == "ben@acme.test"


def test_it_refuses_an_assertion_changed_after_the_idp_signed_it(alice, saml_idp):
    provider = configure_saml(alice.tenant, alice.owner, saml_idp)
    saml_idp.person("cy", email="cy@acme.test", groups=("qz-users",))
    client = browser()
    # An attacker between the IdP and Quetzal makes Cy an admin in the signed assertion
    refused = _sign_in(
        client, saml_idp, "cy@acme.test", "cy", change=lambda xml: xml.replace(">qz-users<", ">qz-admins<")
    )
    # Then the page says the answer was refused, nobody is signed in or made, and the admin can read why
    assert refused.status_code == 403, refused.content.decode()[:2000]
    page = refused.content.decode()
    assert 'data-code="sso_saml_invalid"' in page and "could not verify the answer Acme SAML sent" in page
    assert alice.owner.email in page
    assert "_auth_user_id" not in client.session and not User.objects.filter(email="cy@acme.test").exists()
    provider.refresh_from_db()
    assert "Signature validation failed" in provider.last_error
    assert AuditEvent.objects.filter(action="login.sso_refused", data__reason="sso_saml_invalid").exists()


def test_it_refuses_an_unsigned_assertion(alice, saml_idp):
    provider = configure_saml(alice.tenant, alice.owner, saml_idp)
    saml_idp.person("di", email="di@acme.test", groups=("qz-admins",))
    saml_idp.sign_assertions = False
    client = browser()
    refused = _sign_in(client, saml_idp, "di@acme.test", "di")
    assert refused.status_code == 403 and 'data-code="sso_saml_invalid"' in refused.content.decode()
    assert "_auth_user_id" not in client.session and not User.objects.filter(email="di@acme.test").exists()
    provider.refresh_from_db()
    assert "not signed" in provider.last_error


def test_it_refuses_the_same_answer_posted_twice(alice, saml_idp):
    configure_saml(alice.tenant, alice.owner, saml_idp)
    saml_idp.person("eve", email="eve@acme.test", groups=("qz-users",))
    client = browser()
    started = client.post("/accounts/login/", {"login": "eve@acme.test", "password": ""})
    action, fields = saml_idp.sign_in(started["Location"], "eve")
    assert client.get(client.post(_path(action), fields)["Location"]).status_code == 302
    # The same signed answer again (replayed from another browser): its sign-in was used up
    other = browser()
    replayed = other.get(other.post(_path(action), fields)["Location"])
    assert replayed.status_code == 403 and 'data-code="sso_saml_unsolicited"' in replayed.content.decode()
    assert "_auth_user_id" not in other.session


def test_it_trusts_the_idps_second_factor_when_its_authentication_context_says_so(alice, saml_idp):
    configure_saml(alice.tenant, alice.owner, saml_idp)
    saml_idp.authn_class = "http://schemas.microsoft.com/claims/multipleauthn"
    saml_idp.person("fay", email="fay@acme.test", groups=("qz-users",))
    assert _sign_in(browser(), saml_idp, "fay@acme.test", "fay").status_code == 302
    assert AuditEvent.objects.get(action="login.sso").data["provider_mfa"] is True
    # Entra ID's way: a password context, with the methods attribute naming the second factor
    saml_idp.authn_class = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    saml_idp.person(
        "fay",
        email="fay@acme.test",
        groups=("qz-users",),
        **{AUTHN_METHODS: ["http://schemas.microsoft.com/claims/multipleauthn"]},
    )
    assert _sign_in(browser(), saml_idp, "fay@acme.test", "fay").status_code == 302
    assert list(AuditEvent.objects.filter(action="login.sso").values_list("data__provider_mfa", flat=True)) == [
        True,
        True,
    ]


def test_it_publishes_the_tenants_sp_metadata_at_a_stable_url(alice, saml_idp):
    provider = configure_saml(alice.tenant, alice.owner, saml_idp)
    url = f"/accounts/saml/{provider.provider_id}/metadata/"
    published = browser().get(url)
    assert published.status_code == 200 and published["Content-Type"] == "application/samlmetadata+xml"
    root = etree.fromstring(published.content)
    # Valid against the OASIS SAML 2.0 metadata schema (python3-saml ships the XSDs)
    assert not isinstance(OneLogin_Saml2_XML.validate_xml(published.content, "saml-schema-metadata-2.0.xsd"), str)
    assert root.tag == f"{{{MD}}}EntityDescriptor" and root.get("entityID") == f"http://testserver{url}"
    sp = root.find(f"{{{MD}}}SPSSODescriptor")
    assert sp.get("WantAssertionsSigned") == "true"
    acs = sp.find(f"{{{MD}}}AssertionConsumerService")
    assert acs.get("Location") == f"http://testserver/accounts/saml/{provider.provider_id}/acs/"
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    # Published while the provider is turned off too (the IdP is set up first); gone with the provider
    IdentityProvider.objects.filter(pk=provider.pk).update(enabled=False)
    assert browser().get(url).status_code == 200
    provider.delete()
    assert browser().get(url).status_code == 404


def test_it_reads_the_idps_entity_id_sign_in_url_and_certificate_from_its_metadata(alice, saml_idp):
    provider = configure_saml(alice.tenant, alice.owner, saml_idp)
    certificate = saml_idp.cert_file.read_text().split("-----")[2].replace("\n", "")
    assert provider.saml_entity_id == saml_idp.entity_id and provider.saml_sso_url == saml_idp.sso_url
    assert provider.saml_certificate == certificate


def test_a_broken_saml_provider_gives_the_person_whom_to_ask_and_the_admin_why(alice, saml_idp):
    provider = configure_saml(alice.tenant, alice.owner, saml_idp)
    # The stored sign-in URL went bad (edited in the database, say): python3-saml refuses the settings
    IdentityProvider.objects.filter(pk=provider.pk).update(saml_sso_url="not a url")
    client = browser()
    answer = client.post("/accounts/login/", {"login": "gus@acme.test", "password": ""})
    assert answer.status_code == 502 and 'data-testid="sso-unavailable"' in answer.content.decode()
    assert alice.owner.email in answer.content.decode()
    provider.refresh_from_db()
    assert provider.last_error and provider.last_error_at is not None
    # allauth's other SAML URLs give the same page, never a server error
    assert client.get(f"/accounts/saml/{provider.provider_id}/sls/").status_code == 502
    assert client.post(f"/accounts/saml/{provider.provider_id}/login/").status_code == 502


def test_it_refuses_a_sign_in_the_idp_started_on_its_own(alice, saml_idp):
    # IdP-initiated sign-in (an answer to no AuthnRequest) is refused: nothing ties it to this browser
    provider = configure_saml(alice.tenant, alice.owner, saml_idp)
    saml_idp.person("hal", email="hal@acme.test", groups=("qz-users",))
    client = browser()
    started = client.post("/accounts/login/", {"login": "hal@acme.test", "password": ""})
    action, fields = saml_idp.sign_in(started["Location"], "hal", unsolicited=True)
    answer = client.get(client.post(_path(action), fields)["Location"])
    assert answer.status_code == 502 and "_auth_user_id" not in client.session
    assert not User.objects.filter(email="hal@acme.test").exists()
    provider.refresh_from_db()
    assert "IdP-initiated" in provider.last_error


def test_it_takes_the_address_from_an_email_name_id_when_the_idp_sends_no_attributes(alice, saml_idp):
    # Given a provider that maps no group (everyone a member), and an IdP that says only the NameID
    configure_saml(alice.tenant, alice.owner, saml_idp, group_roles={})
    saml_idp.person("ivy", email="ivy@acme.test", nameid_only=True)
    client = browser()
    assert _sign_in(client, saml_idp, "ivy@acme.test", "ivy").status_code == 302
    ivy = User.objects.get(email="ivy@acme.test")
    assert client.session["_auth_user_id"] == str(ivy.pk)
    assert Membership.objects.get(user=ivy, tenant=alice.tenant).role == Role.MEMBER
