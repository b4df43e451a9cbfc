"""Tenants become Stripe customers with a metered subscription; Checkout and the portal (localstripe)."""

from __future__ import annotations

import json

import pytest

from billing.models import BillingAccount, StripeCatalog
from billing.services import accounts
from billing.tests.stripe_server import sign
from tenants.models import AuditEvent
from tests.fixtures import login_client

pytestmark = pytest.mark.stripe


def test_it_makes_a_tenant_a_customer_subscribed_to_a_metered_price(stripe_world, alice):
    # When billing sets alice up
    account = accounts.ensure_account(tenant=alice.tenant)
    # Then alice is a customer in Stripe, named and tagged with the tenant
    customer = stripe_world.localstripe.call("GET", f"/v1/customers/{account.stripe_customer_id}")
    assert customer["name"] == "Alice" and customer["metadata"]["quetzal_tenant_id"] == str(alice.tenant.pk)
    assert customer["email"] == alice.owner.email
    # And subscribed to a monthly metered price on a summing meter of millionths of a dollar
    catalog = StripeCatalog.objects.get()
    subscription = stripe_world.localstripe.call("GET", f"/v1/subscriptions/{account.stripe_subscription_id}")
    assert subscription["customer"] == account.stripe_customer_id
    assert subscription["items"]["data"][0]["plan"]["id"] == catalog.price_id
    price = stripe_world.front.seen.prices[catalog.price_id]
    assert price["recurring"] == {"interval": "month", "usage_type": "metered", "meter": catalog.meter_id}
    assert price["unit_amount_decimal"] == "0.0001" and price["currency"] == "usd"
    meter = stripe_world.front.seen.meters[catalog.meter_id]
    assert meter["default_aggregation"] == {"formula": "sum"} and meter["event_name"] == catalog.event_name
    assert {e.action for e in AuditEvent.objects.filter(tenant=alice.tenant)} >= {
        "billing.customer_created",
        "billing.subscription_created",
    }
    # And asking again changes nothing and calls Stripe no more
    calls = len(stripe_world.front.seen.requests)
    assert accounts.ensure_account(tenant=alice.tenant).stripe_customer_id == account.stripe_customer_id
    assert len(stripe_world.front.seen.requests) == calls


def test_it_saves_a_card_through_checkout_in_setup_mode(stripe_world, alice):
    admin = login_client(alice.admin, alice.tenant)
    # When a tenant admin asks to add a payment method
    response = admin.post("/manage/billing/checkout/")
    # Then they are sent to a Checkout session in setup mode for their customer
    assert response.status_code == 302
    [session] = stripe_world.front.seen.checkout_sessions.values()
    account = BillingAccount.objects.get(tenant=alice.tenant)
    assert response["Location"] == session["url"]
    assert (session["mode"], session["customer"], session["currency"]) == ("setup", account.stripe_customer_id, "usd")
    assert session["success_url"].startswith("http://testserver/manage/billing/")
    # When they save a card and Stripe tells Quetzal
    completed = stripe_world.front.complete_checkout(session["id"])
    event = {
        "id": "evt_checkout_1",
        "object": "event",
        "type": "checkout.session.completed",
        "created": 1_900_000_000,
        "data": {"object": completed},
    }
    payload = json.dumps(event).encode()
    answer = admin.post(
        "/billing/stripe/webhook/", data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload)
    )
    # Then the card is the customer's default for invoices, and the Billing page shows it
    assert answer.status_code == 200, answer.content
    customer = stripe_world.localstripe.call("GET", f"/v1/customers/{account.stripe_customer_id}")
    assert customer["invoice_settings"]["default_payment_method"].startswith("pm_")
    account.refresh_from_db()
    assert (account.payment_method_brand, account.payment_method_last4) == ("visa", "4242")
    assert b"Visa ending in 4242" in admin.get("/manage/billing/").content


def test_it_opens_the_customer_portal(stripe_world, alice):
    admin = login_client(alice.owner, alice.tenant)
    response = admin.post("/manage/billing/portal/")
    [session] = stripe_world.front.seen.portal_sessions
    assert response.status_code == 302 and response["Location"] == session["url"]
    assert session["return_url"] == "http://testserver/manage/billing/"
    assert session["customer"] == BillingAccount.objects.get(tenant=alice.tenant).stripe_customer_id


def test_it_lets_only_tenant_admins_manage_payment(stripe_world, alice):
    member = login_client(alice.member, alice.tenant)
    assert member.get("/manage/billing/").status_code == 403
    assert member.post("/manage/billing/checkout/").status_code == 403
    assert member.post("/manage/billing/portal/").status_code == 403
    assert not stripe_world.front.seen.checkout_sessions and not stripe_world.front.seen.portal_sessions


def test_it_needs_no_payment_method_from_an_exempt_tenant(stripe_world, alice):
    accounts.set_exempt(account=accounts.account_for(alice.tenant), exempt=True, actor=None)
    admin = login_client(alice.admin, alice.tenant)
    response = admin.post("/manage/billing/checkout/", follow=True)
    assert b"not charged for usage" in response.content
    assert not stripe_world.front.seen.checkout_sessions
    assert BillingAccount.objects.get(tenant=alice.tenant).stripe_customer_id is None
