"""Single sign-on in Debian's Chromium, at desktop and phone sizes: the email-first sign-in page routes an address
to its tenant's provider (a real one, oidc-provider-mock) and back, signed in, or to the directory password page of
its tenant's LDAP server (a real slapd); the admin console's page fits, and verifies a domain against a real DNS
server (dnsmasq) the Quetzal process asks.

Quetzal runs under its production ASGI server in a subprocess on the test database; the provider runs in this
process. Screenshots go to test-artifacts/pages/.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest

from desktops.tests.browser import chromium  # noqa: F401  (fixture)
from desktops.tests.page_audit import axe_violations, no_sideways_scroll
from quetzal.kek import current_kek
from tenants.models import Membership
from tenants.sso.tests.dnsmasq import Dnsmasq, dnsmasq_server  # noqa: F401  (fixture)
from tenants.sso.tests.provider import configure, oidc_provider  # noqa: F401  (fixture)
from tenants.sso.tests.slapd import PASSWORDS, configure_ldap, slapd  # noqa: F401  (fixture)
from tests.factories import PASSWORD
from tests.processes import ROOT, child_env, require_shared_services, start_asgi_server
from tests.services import require_module

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts" / "pages"
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


@pytest.fixture
def base(transactional_db, tmp_path, dnsmasq_server: Dnsmasq) -> Iterator[str]:  # noqa: F811
    require_shared_services("the server process")
    dnsmasq_server.clear()
    # The server unseals the provider's client secret: it gets this process's key-encryption key; it verifies
    # domains against the module's dnsmasq (a restart keeps its port).
    env = child_env(
        QUETZAL_KEK=base64.b64encode(current_kek().key).decode(),
        QUETZAL_VAR_DIR=str(tmp_path / "var"),
        SSO_DNS_NAMESERVER=f"127.0.0.1:{dnsmasq_server.port}",
        SSO_DNS_TIMEOUT_SECONDS="2",
    )
    server, url = start_asgi_server(env=env, log_path=tmp_path / "server.log")
    yield url
    server.stop(15)


def _page(chromium, viewport: str, errors: list[str]):  # noqa: F811
    page = chromium.new_context(**VIEWPORTS[viewport]).new_page()
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    return page


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_it_sends_an_address_to_its_provider_and_back_signed_in(
    viewport,
    alice,
    oidc_provider,  # noqa: F811
    chromium,  # noqa: F811
    base,
    dnsmasq_server,  # noqa: F811
):
    expect = require_module("playwright.sync_api", "the playwright Python package").expect
    configure(alice.tenant, alice.owner, oidc_provider.issuer)
    # A second domain, added but not verified yet (the page shows its record)
    labs = configure(
        alice.tenant, alice.owner, oidc_provider.issuer, name="Labs ID", domains=("labs.test",), verified=False
    )
    oidc_provider.person("ana", email="ana@acme.test", groups=["qz-users"], name="Ana Acme")
    errors: list[str] = []
    page = _page(chromium, viewport, errors)
    # When Ana types her work address on the sign-in page
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", "ana@acme.test")
    # Then the password goes away and the button says where she is going
    expect(page.get_by_test_id("sign-in")).to_have_text("Continue with Acme ID")
    expect(page.locator("input[name=password]")).to_be_hidden()
    assert no_sideways_scroll(page) and not axe_violations(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"sso-login-{viewport}.png"), full_page=True)
    # And continuing takes her to the provider, and back into alice's portal once she signs in there
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(re.compile(re.escape(oidc_provider.issuer) + r"/oauth2/authorize.*"))
    page.fill("input[name=sub]", "ana")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{base}/")
    assert Membership.objects.get(user__email="ana@acme.test").tenant == alice.tenant
    assert "ana@acme.test" in page.content() or "Ana" in page.content()
    page.screenshot(path=str(ARTIFACTS / f"sso-signed-in-{viewport}.png"), full_page=True)
    # And an address without single sign-on keeps its password on the same page
    other = _page(chromium, viewport, errors)
    other.goto(f"{base}/accounts/login/")
    other.fill("input[name=login]", alice.admin.email)
    other.fill("input[name=password]", PASSWORD)
    expect(other.get_by_test_id("sign-in")).to_have_text("Sign in")
    other.get_by_test_id("sign-in").click()
    other.wait_for_url(f"{base}/")
    # And the admin console's single sign-on page lists the provider and its domains, and fits the screen
    other.goto(f"{base}/manage/sign-in/")
    expect(other.get_by_test_id("providers")).to_contain_text("Acme ID")
    pending = other.locator('[data-domain="labs.test"]')
    expect(pending.get_by_test_id("domain-status")).to_have_text("Pending")
    expect(pending.get_by_test_id("record-value")).to_have_value(labs.domains.get().record_value)
    expect(other.locator('[data-domain="acme.test"]').get_by_test_id("domain-status")).to_have_text("Verified")
    assert no_sideways_scroll(other) and not axe_violations(other)
    other.screenshot(path=str(ARTIFACTS / f"sso-manage-{viewport}.png"), full_page=True)
    # The copy button copies the record's value (or selects it where the clipboard is refused)
    copy = pending.locator("[data-copy]").last
    copy.click()
    expect(copy).to_have_text(re.compile("Copied|Selected: copy it"))
    # Once the record is published, Verify marks labs.test verified (Quetzal's process asks the real DNS server)
    dnsmasq_server.publish(labs.domains.get().record_name, labs.domains.get().record_value)
    pending.get_by_test_id("verify-domain").click()
    expect(other.locator('[data-domain="labs.test"]').get_by_test_id("domain-status")).to_have_text("Verified")
    expect(other.locator(".messages")).to_contain_text("labs.test is verified")
    assert no_sideways_scroll(other)
    other.screenshot(path=str(ARTIFACTS / f"sso-domains-{viewport}.png"), full_page=True)
    assert not errors, errors


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_it_takes_a_directory_address_to_its_password_page_and_in(viewport, alice, slapd, chromium, base):  # noqa: F811
    expect = require_module("playwright.sync_api", "the playwright Python package").expect
    configure_ldap(alice.tenant, alice.owner, slapd.uri)
    errors: list[str] = []
    page = _page(chromium, viewport, errors)
    # When Ana types her work address on the sign-in page, the button says where she is going
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", "ana@acme.test")
    expect(page.get_by_test_id("sign-in")).to_have_text("Continue with Acme Directory")
    page.get_by_test_id("sign-in").click()
    # Then Quetzal's own page asks for her directory password, fitting the screen
    page.wait_for_url(re.compile(re.escape(base) + r"/accounts/sso/password/\?.*"))
    expect(page.get_by_test_id("ldap-hint")).to_contain_text("Alice signs in with your Acme Directory password")
    expect(page.locator("input[name=login]")).to_have_value("ana@acme.test")
    assert no_sideways_scroll(page) and not axe_violations(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ldap-password-{viewport}.png"), full_page=True)
    # A wrong password is refused on the same page, which still fits
    page.fill("input[name=password]", "not-her-password")
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("are not correct")
    assert no_sideways_scroll(page)
    # And her password signs her in to alice's portal as the member her groups make her
    page.fill("input[name=password]", PASSWORDS["ana"])
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(f"{base}/")
    assert Membership.objects.get(user__email="ana@acme.test").tenant == alice.tenant
    assert not errors, errors
