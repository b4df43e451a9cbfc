"""With billing off, none of it exists and Stripe is never called."""

from __future__ import annotations

import pytest
import stripe

from billing import stripe_api, tasks
from billing.errors import BillingDisabled
from billing.models import UsageInterval
from billing.services import ledger
from billing.tests.helpers import at
from billing.tests.stripe_server import sign
from desktops.tests.factories import DesktopFactory
from tests.fixtures import api_client, login_client


@pytest.fixture
def no_stripe(monkeypatch, settings):
    """Billing off, keys present (as if left configured), and any Stripe client a test failure."""
    settings.BILLING_ENABLED = False
    settings.STRIPE_SECRET_KEY = "sk_test_left_configured"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_left_configured"

    def forbidden(*args, **kwargs):
        raise AssertionError("a Stripe client was made with billing off")

    monkeypatch.setattr(stripe, "StripeClient", forbidden)


def test_it_shows_no_billing_pages_or_api(no_stripe, alice):
    admin = login_client(alice.owner, alice.tenant)
    for url in ("/manage/billing/", "/manage/billing/usage.csv"):
        assert admin.get(url).status_code == 404
    for url in ("/manage/billing/checkout/", "/manage/billing/portal/"):
        assert admin.post(url).status_code == 404
    for url in ("/api/v1/billing/usage/", "/api/v1/billing/invoices/"):
        response = api_client(alice.owner, alice.tenant).get(url)
        assert response.status_code == 404 and response.json()["code"] == "billing_disabled"
    assert b"/manage/billing/" not in admin.get("/manage/members/").content


def test_it_has_no_webhook_endpoint(no_stripe, client):
    payload = b'{"id": "evt_1", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}'
    response = client.post(
        "/billing/stripe/webhook/", data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload)
    )
    assert response.status_code == 404


def test_it_runs_no_beat_work_and_calls_no_stripe(no_stripe, alice, template):
    desktop = DesktopFactory(world=alice, template=template)
    assert ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:00:00")) is None
    assert tasks.maintain_ledger.apply().get() == {}
    assert tasks.report_usage.apply().get() == {}
    assert tasks.enforce_grace.apply().get() == []
    assert tasks.sync_invoices.apply().get() == 0
    assert not UsageInterval.objects.exists()
    with pytest.raises(BillingDisabled):
        stripe_api.retrieve_invoice("in_1")
    with pytest.raises(BillingDisabled):
        stripe_api.verify_webhook(b"{}", "t=1,v1=x")


def test_it_refuses_to_run_billing_without_its_keys(settings):
    from billing.checks import stripe_settings

    settings.BILLING_ENABLED, settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = True, "", ""
    assert [e.id for e in stripe_settings(None)] == ["billing.E001", "billing.E002"]
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = "sk_test_x", "whsec_x"
    assert stripe_settings(None) == []
