"""With billing off, none of it exists and Stripe is never called."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.utils import timezone

from billing import stripe_api, tasks
from billing.errors import BillingDisabled
from billing.models import UsageInterval
from billing.services import ledger
from billing.tests.helpers import at
from billing.tests.stripe_server import sign
from desktops.choices import DesktopState, OperationKind, OperationStatus
from desktops.tests.factories import DesktopFactory, OperationFactory
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


def test_it_shows_no_payment_pages_or_api(no_stripe, alice):
    admin = login_client(alice.owner, alice.tenant)
    for url in ("/manage/billing/checkout/", "/manage/billing/portal/"):
        response = admin.post(url)
        # Not found, on the styled page of the layout (not Django's bare one)
        assert response.status_code == 404 and b'data-testid="error-page"' in response.content
    for url in ("/api/v1/billing/usage/", "/api/v1/billing/invoices/"):
        response = api_client(alice.owner, alice.tenant).get(url)
        assert response.status_code == 404 and response.json()["code"] == "billing_disabled"


def test_it_shows_hours_and_estimated_costs_with_billing_off(no_stripe, alice, bob, template):
    # Given one of Alice's desktops ran 90 minutes at 0.40 an hour yesterday, and one of Bob's ran too
    template.price_per_hour = Decimal("0.40")
    template.save()
    now = timezone.now()
    yesterday = now - timedelta(days=1)
    desktop = DesktopFactory(world=alice, template=template, state=DesktopState.STOPPED, name="alices-box")
    ran(desktop, start=yesterday.replace(hour=9, minute=0), minutes=90)
    ran(DesktopFactory(world=bob, template=template, state=DesktopState.STOPPED), start=yesterday, minutes=600)
    admin = login_client(alice.owner, alice.tenant)
    # When the admin opens the usage page of the month that contains yesterday
    period = yesterday.strftime("%Y-%m")
    page = admin.get(f"/manage/billing/?period={period}")
    # Then it says billing is off, and shows Alice's hours and cost only, with no payment parts
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="billing-off"' in html and "Billing is off" in html
    assert page.context["summary"].total.hours == Decimal("1.5")
    assert page.context["summary"].total.amount == Decimal("0.6")
    assert [line.label for line in page.context["summary"].people()] == [alice.member.email]
    assert "billing-checkout" not in html and "Invoices" not in html
    # And the CSV has the one run, priced
    rows = list(csv.reader(io.StringIO(admin.get(f"/manage/billing/usage.csv?period={period}").content.decode())))
    assert rows[0][:3] == ["desktop", "person", "template"]
    assert [(r[0], r[6], r[9]) for r in rows[1:]] == [("alices-box", "5400", "0.600000")]


def test_it_keeps_the_usage_page_for_admins(no_stripe, alice):
    member = login_client(alice.member, alice.tenant)
    assert member.get("/manage/billing/").status_code == 403


def ran(desktop, *, start, minutes: int) -> None:
    """A start and a stop that succeeded: one run of `minutes`."""
    for kind, at_ in ((OperationKind.START, start), (OperationKind.STOP, start + timedelta(minutes=minutes))):
        OperationFactory(desktop=desktop, kind=kind, status=OperationStatus.SUCCEEDED, queued_at=at_, finished_at=at_)


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
