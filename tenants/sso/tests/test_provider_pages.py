"""The admin console's single sign-on pages: configuring a provider, testing it, and what a broken one does."""

from __future__ import annotations

import pytest
from django.test import Client

from quetzal.server import free_port
from tenants.models import AuditEvent
from tenants.sso import services
from tenants.sso.models import EmailDomain, IdentityProvider
from tenants.sso.tests.provider import configure, path_and_query
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db


def _form(issuer: str, **overrides) -> dict[str, str]:
    return {
        "name": "Acme ID",
        "issuer_url": issuer,
        "client_identifier": "quetzal-acme",
        "client_secret": "the-client-secret-123",
        "scopes": "openid email profile",
        "groups_claim": "groups",
        "email_domains": "acme.test\n@Acme-Labs.test",
        "group_roles_text": "qz-admins = admin\nIT Owners = owner",
        "mfa_policy": "trust_provider",
        "enabled": "on",
        **overrides,
    }


def test_it_adds_a_provider_with_its_secret_sealed_and_its_domains_routed(alice):
    admin = login_client(alice.admin, alice.tenant)
    assert admin.get("/manage/sign-in/").status_code == 200
    saved = admin.post("/manage/sign-in/", _form("https://id.acme.test"))
    provider = IdentityProvider.objects.get()
    assert saved.status_code == 302 and saved["Location"] == f"/manage/sign-in/{provider.pk}/"
    assert provider.tenant == alice.tenant and provider.role_names() == {"qz-admins": "admin", "IT Owners": "owner"}
    assert sorted(EmailDomain.objects.values_list("domain", flat=True)) == ["acme-labs.test", "acme.test"]
    # The secret is not in the row as text, and opens only through the service
    assert b"the-client-secret-123" not in bytes(provider.client_secret_sealed)
    assert services.client_secret(provider) == "the-client-secret-123"
    # The edit page gives the redirect URI to register and never shows the secret
    page = admin.get(f"/manage/sign-in/{provider.pk}/").content.decode()
    assert f"http://testserver/accounts/oidc/idp{provider.pk}/login/callback/" in page
    assert "the-client-secret-123" not in page and "A client secret is stored" in page
    # Saving again without a secret keeps it; the audit log has both saves, never the secret
    admin.post(f"/manage/sign-in/{provider.pk}/", _form("https://id.acme.test", client_secret="", name="Acme"))
    provider.refresh_from_db()
    assert provider.name == "Acme" and services.client_secret(provider) == "the-client-secret-123"
    events = AuditEvent.objects.filter(tenant=alice.tenant, action="sso.provider.save")
    assert events.count() == 2 and all("the-client-secret" not in str(e.data) for e in events)


def test_it_refuses_bad_settings_with_clear_errors(alice, bob):
    configure(bob.tenant, bob.owner, "https://id.bob.test", domains=("acme.test",))
    admin = login_client(alice.admin, alice.tenant)
    cases = {
        "email_domains": ("acme .test\nnot a domain", "Not a domain"),
        "group_roles_text": ("qz-admins = superuser", "Line 1: write it as group = owner, admin or member."),
        "scopes": ("email profile", "The scopes must include openid."),
        "issuer_url": ("not a url", "Enter a valid URL."),
    }
    for field, (value, message) in cases.items():
        answer = admin.post("/manage/sign-in/", _form("https://id.acme.test", **{field: value}))
        assert answer.status_code == 400 and message in answer.content.decode(), field
    # A domain another tenant routed already
    taken = admin.post("/manage/sign-in/", _form("https://id.acme.test", email_domains="acme.test"))
    assert taken.status_code == 400 and "Already routed to another provider: acme.test." in taken.content.decode()
    assert not IdentityProvider.objects.filter(tenant=alice.tenant).exists()


def test_it_keeps_the_pages_to_the_tenants_admins(alice, bob):
    theirs = configure(bob.tenant, bob.owner, "https://id.bob.test", domains=("bob.test",))
    assert login_client(alice.member, alice.tenant).get("/manage/sign-in/").status_code == 403
    admin = login_client(alice.admin, alice.tenant)
    for url in (f"/manage/sign-in/{theirs.pk}/", f"/manage/sign-in/{theirs.pk}/test/"):
        assert admin.get(url).status_code in (404, 405)
        assert admin.post(url, _form("https://evil.test")).status_code == 404
    assert admin.post(f"/manage/sign-in/{theirs.pk}/delete/").status_code == 404
    assert "Acme ID" not in admin.get("/manage/sign-in/").content.decode()
    assert IdentityProvider.objects.filter(pk=theirs.pk, issuer_url="https://id.bob.test").exists()


def test_it_tests_the_connection_and_says_what_is_wrong(alice, oidc_provider):
    admin = login_client(alice.admin, alice.tenant)
    good = configure(alice.tenant, alice.owner, oidc_provider.issuer)
    answer = admin.post(f"/manage/sign-in/{good.pk}/test/", follow=True).content.decode()
    assert f"Connected: {oidc_provider.issuer} answers" in answer
    # A path where no discovery document is
    wrong_path = configure(alice.tenant, alice.owner, f"{oidc_provider.issuer}/realms/acme", domains=("b.test",))
    answer = admin.post(f"/manage/sign-in/{wrong_path.pk}/test/", follow=True).content.decode()
    assert "Connection failed (sso_provider_unavailable)" in answer and "answered HTTP 404" in answer
    # Nothing listening there
    closed = configure(alice.tenant, alice.owner, f"http://127.0.0.1:{free_port()}", domains=("c.test",))
    answer = admin.post(f"/manage/sign-in/{closed.pk}/test/", follow=True).content.decode()
    assert "Could not reach" in answer and "ConnectionError" in answer
    # A scope the provider does not offer
    scoped = configure(alice.tenant, alice.owner, oidc_provider.issuer, domains=("d.test",), scopes="openid payroll")
    answer = admin.post(f"/manage/sign-in/{scoped.pk}/test/", follow=True).content.decode()
    assert "Connection failed (sso_scopes): The provider does not offer the scopes payroll." in answer


def test_it_shows_the_person_whom_to_ask_and_the_admin_why_when_the_provider_is_down(alice):
    broken = configure(alice.tenant, alice.owner, f"http://127.0.0.1:{free_port()}")
    # When someone of the routed domain signs in, or a script posts to allauth's own start URL
    answers = [
        Client().post("/accounts/login/", {"login": "ana@acme.test"}),
        Client().post(f"/accounts/oidc/{broken.provider_id}/login/"),
    ]
    # Then each gets a page that names the tenant's admins, not a server error
    for answer in answers:
        page = answer.content.decode()
        assert answer.status_code == 502 and 'data-testid="sso-unavailable"' in page
        assert alice.owner.email in page and alice.admin.email in page
    # And the admin reads what failed on the provider's page
    broken.refresh_from_db()
    assert "Could not reach" in broken.last_error and broken.last_error_at is not None
    page = login_client(alice.admin, alice.tenant).get(f"/manage/sign-in/{broken.pk}/").content.decode()
    assert 'data-testid="last-error"' in page and "Could not reach" in page


def test_it_answers_a_forged_or_failed_callback_with_the_ask_page(alice, oidc_provider):
    idp = configure(alice.tenant, alice.owner, oidc_provider.issuer)
    oidc_provider.person("ana", email="ana@acme.test", groups=["qz-users"])
    client = Client()
    started = client.post("/accounts/login/", {"login": "ana@acme.test"})
    back = path_and_query(oidc_provider.authorize(started["Location"], "ana"))
    # A code the provider never issued: its token endpoint refuses it
    forged = client.get(back.replace("code=", "code=forged"))
    assert forged.status_code == 502 and "_auth_user_id" not in client.session
    idp.refresh_from_db()
    assert idp.last_error
    # The provider sent an error back instead of a code
    refused = client.get(f"/accounts/oidc/{idp.provider_id}/login/callback/?error=server_error&state=x")
    assert refused.status_code in (400, 502) and "_auth_user_id" not in client.session
    # A provider id that names no provider
    assert client.get("/accounts/oidc/idp987654/login/callback/?code=x&state=y").status_code == 404


def test_it_tells_the_sign_in_page_which_addresses_use_single_sign_on(alice):
    configure(alice.tenant, alice.owner, "https://id.acme.test")
    client = Client()
    assert client.get("/accounts/sso/route/", {"email": "ana@ACME.test"}).json() == {
        "sso": True,
        "provider": "Acme ID",
        "password_allowed": False,
    }
    assert client.get("/accounts/sso/route/", {"email": "ana@other.test"}).json() == {"sso": False}
    assert client.get("/accounts/sso/route/", {"email": "x" * 5000}).json() == {"sso": False}
    assert client.post("/accounts/sso/route/").status_code == 405


def test_it_removes_a_provider_and_its_domains(alice):
    provider = configure(alice.tenant, alice.owner, "https://id.acme.test")
    admin = login_client(alice.admin, alice.tenant)
    assert admin.post(f"/manage/sign-in/{provider.pk}/delete/").status_code == 302
    assert not IdentityProvider.objects.exists() and not EmailDomain.objects.exists()
    assert AuditEvent.objects.filter(tenant=alice.tenant, action="sso.provider.delete").exists()
    assert services.provider_for_email("ana@acme.test") is None
