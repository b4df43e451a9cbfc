"""The admin console's SAML provider pages: adding one from the IdP's metadata (URL or XML), what Quetzal gives the
IdP's admin, the connection test, and bad metadata told on the form (never a 500)."""

from __future__ import annotations

import pytest
from django.test import Client

from quetzal.server import free_port
from tenants.models import AuditEvent
from tenants.sso.choices import ProviderKind
from tenants.sso.models import EmailDomain, IdentityProvider
from tenants.sso.tests.saml_idp import configure_saml
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db


def _form(**overrides) -> dict[str, str]:
    return {
        "kind": "saml",
        "name": "Acme Entra",
        "saml_metadata_url": "",
        "saml_metadata_xml": "",
        "saml_email_attributes": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress email",
        "saml_name_attributes": "http://schemas.microsoft.com/identity/claims/displayname",
        "saml_groups_attributes": "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups groups",
        "email_domains": "acme.test",
        "group_roles_text": "qz-admins = admin",
        "mfa_policy": "trust_provider",
        "enabled": "on",
        **overrides,
    }


def test_it_adds_a_saml_provider_from_the_idps_metadata_url_and_shows_what_to_give_the_idp(alice, saml_idp):
    admin = login_client(alice.admin, alice.tenant)
    page = admin.get("/manage/sign-in/").content.decode()
    assert 'data-kind="saml"' in page and "New SAML 2.0 provider" in page
    # The defaults read Entra ID's and Okta's attribute names
    assert "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups groups memberOf" in page
    saved = admin.post("/manage/sign-in/", _form(saml_metadata_url=saml_idp.metadata_url))
    provider = IdentityProvider.objects.get()
    assert saved.status_code == 302 and saved["Location"] == f"/manage/sign-in/{provider.pk}/"
    # What the metadata said is kept: entity id, sign-in URL, signing certificate
    assert provider.kind == ProviderKind.SAML and provider.tenant == alice.tenant
    assert provider.saml_entity_id == saml_idp.entity_id and provider.saml_sso_url == saml_idp.sso_url
    assert provider.saml_certificate and "EntityDescriptor" in provider.saml_metadata_xml
    assert list(EmailDomain.objects.values_list("domain", flat=True)) == ["acme.test"]
    assert provider.role_names() == {"qz-admins": "admin"}
    # The provider's page gives the SP metadata URL (with a copy button), its entity id and ACS URL
    page = admin.get(f"/manage/sign-in/{provider.pk}/").content.decode()
    metadata_url = f"http://testserver/accounts/saml/{provider.provider_id}/metadata/"
    assert f'value="{metadata_url}" aria-label="Metadata URL" data-testid="sp-metadata-url"><button' in page
    assert 'data-testid="sp-metadata-url"><button type="button" class="secondary small" data-copy>' in page
    assert f"http://testserver/accounts/saml/{provider.provider_id}/acs/" in page
    assert saml_idp.sso_url in page and 'data-testid="idp-certificate"' in page
    # The audit log names the IdP
    saved_event = AuditEvent.objects.get(action="sso.provider.save")
    assert saved_event.data["kind"] == "saml" and saved_event.data["issuer"] == saml_idp.entity_id


def test_it_takes_pasted_metadata_xml_too(alice, saml_idp):
    admin = login_client(alice.admin, alice.tenant)
    saved = admin.post("/manage/sign-in/", _form(saml_metadata_xml=saml_idp.metadata()))
    assert saved.status_code == 302
    assert IdentityProvider.objects.get().saml_entity_id == saml_idp.entity_id


def test_it_says_what_is_wrong_with_bad_metadata_on_the_form(alice, saml_idp):
    admin = login_client(alice.admin, alice.tenant)
    no_signing = saml_idp.metadata().replace('use="signing"', 'use="encryption"')
    cases = {
        "nothing": ({}, "Give the IdP&#x27;s metadata URL, or paste its metadata XML."),
        "not XML": ({"saml_metadata_xml": "this is <not xml"}, "This is not SAML metadata Quetzal can read"),
        "a DTD": (
            {"saml_metadata_xml": '<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'},
            "This is not SAML metadata Quetzal can read",
        ),
        "no IdP": (
            {"saml_metadata_xml": '<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>'},
            "The metadata describes no identity provider",
        ),
        "no signing key": ({"saml_metadata_xml": no_signing}, "The metadata has no signing certificate"),
        "404": ({"saml_metadata_url": f"{saml_idp.base}/nothing-here"}, "answered HTTP 404, not the metadata."),
        "unreachable": ({"saml_metadata_url": f"http://127.0.0.1:{free_port()}/metadata"}, "Could not reach"),
        "bad attribute": (
            {"saml_metadata_url": saml_idp.metadata_url, "saml_email_attributes": 'a"b'},
            "Not an attribute name",
        ),
    }
    for case, (values, message) in cases.items():
        answer = admin.post("/manage/sign-in/", _form(**values))
        page = answer.content.decode()
        assert answer.status_code == 400 and message in page, (case, page[page.find("field-error") :][:400])
    assert not IdentityProvider.objects.exists()


def test_its_connection_test_reads_the_metadata_again_and_takes_a_rolled_certificate(alice, saml_idp, tmp_path):
    provider = configure_saml(alice.tenant, alice.owner, saml_idp)
    admin = login_client(alice.admin, alice.tenant)
    tested = admin.post(f"/manage/sign-in/{provider.pk}/test/", follow=True)
    assert "its metadata is as saved" in tested.content.decode()
    # The IdP rolls its signing certificate: the test reads the new one from the metadata URL and keeps it
    from tenants.sso.tests.saml_idp import key_and_certificate

    (tmp_path / "new").mkdir()
    saml_idp.key_file, saml_idp.cert_file = key_and_certificate(tmp_path / "new")
    before = provider.saml_certificate
    tested = admin.post(f"/manage/sign-in/{provider.pk}/test/", follow=True)
    assert "its metadata changed and was saved" in tested.content.decode()
    provider.refresh_from_db()
    assert provider.saml_certificate != before
    # An IdP that stopped answering: a clear message, and the provider's last error
    saml_idp.base = f"http://127.0.0.1:{free_port()}"
    IdentityProvider.objects.filter(pk=provider.pk).update(saml_metadata_url=saml_idp.metadata_url)
    tested = admin.post(f"/manage/sign-in/{provider.pk}/test/", follow=True)
    assert "Connection failed (sso_saml_metadata): Could not reach" in tested.content.decode()


def test_it_keeps_a_saml_providers_pages_and_urls_to_its_tenant(alice, bob, saml_idp):
    theirs = configure_saml(bob.tenant, bob.owner, saml_idp, domains=("bob.test",))
    admin = login_client(alice.admin, alice.tenant)
    assert admin.get(f"/manage/sign-in/{theirs.pk}/").status_code == 404
    # A SAML provider is no OpenID Connect one, and no SAML URL names an OIDC or unknown provider
    assert Client().get(f"/accounts/oidc/{theirs.provider_id}/login/").status_code == 404
    assert Client().get("/accounts/saml/idp999999/metadata/").status_code == 404
    assert Client().get("/accounts/saml/nonsense/login/").status_code == 404


def test_it_speaks_german_on_the_saml_pages(alice, saml_idp):
    provider = configure_saml(alice.tenant, alice.owner, saml_idp)
    admin = login_client(alice.admin, alice.tenant)
    new = admin.get("/manage/sign-in/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Neuer SAML-2.0-Anbieter" in new
    page = admin.get(f"/manage/sign-in/{provider.pk}/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Für Ihren Identitätsanbieter" in page and "Antwort-URL (ACS)" in page
