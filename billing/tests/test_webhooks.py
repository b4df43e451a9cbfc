"""Stripe webhooks from localstripe, signed by it: verification, once-only, order, and dunning."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import BillingAccount, Invoice, WebhookEvent
from billing.services import accounts, dunning
from billing.tests.conftest import NOWHERE
from billing.tests.stripe_server import sign
from desktops.choices import DesktopState, OperationKind
from desktops.models import Operation
from desktops.services.requests import request_action
from quetzal.errors import Forbidden
from tenants.choices import TenantStatus
from tenants.models import AuditEvent
from tests.fixtures import api_client, login_client

pytestmark = pytest.mark.stripe
FAILING_IBAN = "DE62370400440532013001"  # localstripe fails debits from it, a moment later


def _deliver(body: bytes, signature: str):
    return Client().post(
        "/billing/stripe/webhook/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )


def _default_method(world, customer_id: str, **method) -> str:
    pm = world.localstripe.call("POST", "/v1/payment_methods", method)
    world.localstripe.call("POST", f"/v1/payment_methods/{pm['id']}/attach", {"customer": customer_id})
    world.localstripe.call(
        "POST", f"/v1/customers/{customer_id}", {"invoice_settings": {"default_payment_method": pm["id"]}}
    )
    return pm["id"]


def _card(world, customer_id: str) -> str:
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    return _default_method(world, customer_id, type="card", card=card)


def _failed_invoice(world, account: BillingAccount) -> str:
    """An invoice of 12.34 whose collection fails (a debit that bounces); returns its id."""
    _default_method(world, account.stripe_customer_id, type="sepa_debit", sepa_debit={"iban": FAILING_IBAN})
    world.localstripe.call(
        "POST", "/v1/invoiceitems", {"customer": account.stripe_customer_id, "amount": 1234, "currency": "usd"}
    )
    invoice = world.localstripe.call("POST", "/v1/invoices", {"customer": account.stripe_customer_id})
    world.localstripe.call("POST", f"/v1/invoices/{invoice['id']}/pay")
    return invoice["id"]


@pytest.fixture
def account(stripe_world, alice) -> BillingAccount:
    return accounts.ensure_account(tenant=alice.tenant)


def test_it_refuses_a_bad_signature_and_changes_nothing(stripe_world, account):
    invoice_id = _failed_invoice(stripe_world, account)
    body, signature = stripe_world.inbox.wait_for("invoice.payment_failed", invoice_id)
    # When the body was altered, signed with another secret, or not signed at all
    tampered = body.replace(b'"amount_due": 1234', b'"amount_due": 1')
    assert tampered != body
    for payload, header in ((tampered, signature), (body, sign(body, secret="whsec_someone_else")), (body, "")):
        answer = _deliver(payload, header)
        # Then it is refused with 400 and nothing is recorded or changed
        assert answer.status_code == 400 and answer.json()["code"] == "bad_signature"
    assert not WebhookEvent.objects.exists() and not Invoice.objects.exists()
    assert BillingAccount.objects.get(pk=account.pk).arrears_since is None


def test_it_processes_a_replayed_event_once(stripe_world, account):
    invoice_id = _failed_invoice(stripe_world, account)
    body, signature = stripe_world.inbox.wait_for("invoice.payment_failed", invoice_id)
    first, again = _deliver(body, signature), _deliver(body, signature)
    assert first.status_code == again.status_code == 200
    assert "arrears started" in first.json()["outcome"] and again.json()["outcome"] == "already processed"
    assert WebhookEvent.objects.filter(stripe_event_id=json.loads(body)["id"]).count() == 1
    assert AuditEvent.objects.filter(action="billing.payment_failed", tenant=account.tenant).count() == 1


def test_it_applies_the_object_as_it_is_now_whatever_order_events_arrive_in(stripe_world, account):
    # Given an invoice that failed, then was paid by card
    invoice_id = _failed_invoice(stripe_world, account)
    failed = stripe_world.inbox.wait_for("invoice.payment_failed", invoice_id)
    _card(stripe_world, account.stripe_customer_id)
    stripe_world.localstripe.call("POST", f"/v1/invoices/{invoice_id}/pay")
    paid = stripe_world.inbox.wait_for("invoice.payment_succeeded", invoice_id)
    # When the events arrive newest first
    assert _deliver(*paid).status_code == 200
    assert json.loads(failed[0])["data"]["object"]["status"] == "open"  # the late event's stale picture
    assert _deliver(*failed).status_code == 200
    # Then the stale "payment failed" does not put alice in arrears: Quetzal asked Stripe instead
    invoice = Invoice.objects.get(stripe_id=invoice_id)
    assert invoice.status == "paid" and invoice.amount_due == invoice.amount_paid
    assert str(invoice.amount_due) == "12.34"
    assert BillingAccount.objects.get(pk=account.pk).arrears_since is None


def test_it_suspends_after_the_grace_period_and_reactivates_on_payment(
    stripe_world, account, host, template, work, settings
):
    settings.BILLING_GRACE_DAYS = 7
    tenant, owner = account.tenant, account.tenant.memberships.get(role="owner").user
    client = login_client(owner, tenant, client_class=Client)
    api = api_client(owner, tenant)
    with work():
        desktop_id = api.post("/api/desktop/start", {"template": template.pk}, format="json").json()["desktop"]["id"]
    # Given a failed payment
    invoice_id = _failed_invoice(stripe_world, account)
    assert _deliver(*stripe_world.inbox.wait_for("invoice.payment_failed", invoice_id)).status_code == 200
    account.refresh_from_db()
    # Then a grace period starts; the tenant stays active and its desktop keeps running
    assert account.in_arrears and account.grace_until - account.arrears_since == timedelta(days=7)
    assert dunning.enforce_grace(now=account.grace_until - timedelta(minutes=1)) == []
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.ACTIVE
    assert b"A payment failed" in client.get("/manage/billing/").content
    # When the grace period ends
    with work():
        assert dunning.enforce_grace(now=account.grace_until + timedelta(seconds=1)) == [tenant.pk]
    # Then the tenant is suspended: its running desktop was stopped and nothing new may start
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.SUSPENDED
    stop = Operation.objects.get(desktop_id=desktop_id, kind=OperationKind.STOP)
    assert stop.desktop.state == DesktopState.STOPPED
    with pytest.raises(Forbidden):
        request_action(desktop=stop.desktop, kind=OperationKind.START, actor=owner)
    # When the invoice is paid
    _card(stripe_world, account.stripe_customer_id)
    stripe_world.localstripe.call("POST", f"/v1/invoices/{invoice_id}/pay")
    answer = _deliver(*stripe_world.inbox.wait_for("invoice.payment_succeeded", invoice_id))
    # Then arrears are cleared and the tenant is active again
    assert answer.status_code == 200 and "reactivated" in answer.json()["outcome"]
    tenant.refresh_from_db()
    account.refresh_from_db()
    assert tenant.status == TenantStatus.ACTIVE and not account.in_arrears and not account.suspended_by_billing
    assert request_action(desktop=stop.desktop, kind=OperationKind.START, actor=owner).kind == OperationKind.START


def test_it_does_not_reactivate_a_tenant_an_operator_suspended(stripe_world, account):
    from tenants.services.tenants import set_status

    invoice_id = _failed_invoice(stripe_world, account)
    _deliver(*stripe_world.inbox.wait_for("invoice.payment_failed", invoice_id))
    set_status(tenant=account.tenant, status=TenantStatus.SUSPENDED, reason="abuse")
    assert dunning.enforce_grace(now=timezone.now() + timedelta(days=30)) == []
    _card(stripe_world, account.stripe_customer_id)
    stripe_world.localstripe.call("POST", f"/v1/invoices/{invoice_id}/pay")
    _deliver(*stripe_world.inbox.wait_for("invoice.payment_succeeded", invoice_id))
    account.tenant.refresh_from_db()
    assert account.tenant.status == TenantStatus.SUSPENDED


def test_it_has_stripe_deliver_again_when_the_object_cannot_be_fetched(stripe_world, account, settings):
    invoice_id = _failed_invoice(stripe_world, account)
    delivery = stripe_world.inbox.wait_for("invoice.payment_failed", invoice_id)
    reachable = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = NOWHERE
    answer = _deliver(*delivery)
    # A 503 keeps no record, so Stripe's redelivery is processed in full
    assert answer.status_code == 503 and answer.json()["code"] == "stripe_unavailable"
    assert not WebhookEvent.objects.exists()
    settings.STRIPE_API_BASE = reachable
    assert "arrears started" in _deliver(*delivery).json()["outcome"]


def test_it_ignores_events_about_customers_it_does_not_know(stripe_world, account):
    stranger = stripe_world.localstripe.call("POST", "/v1/customers", {"name": "Not ours"})
    stripe_world.localstripe.call("POST", f"/v1/customers/{stranger['id']}", {"description": "someone else's"})
    answer = _deliver(*stripe_world.inbox.wait_for("customer.updated", stranger["id"]))
    assert answer.status_code == 200 and answer.json()["outcome"].startswith("ignored")
    assert WebhookEvent.objects.get().tenant is None


def test_it_lists_invoices_on_the_billing_page(stripe_world, account):
    invoice_id = _failed_invoice(stripe_world, account)
    _deliver(*stripe_world.inbox.wait_for("invoice.payment_failed", invoice_id))
    page = login_client(account.tenant.memberships.get(role="admin").user, account.tenant).get("/manage/billing/")
    assert invoice_id.encode() in page.content and b"payment failed" in page.content and b"12.34" in page.content


def test_it_refreshes_the_card_on_file_when_the_customer_changes(stripe_world, account):
    _card(stripe_world, account.stripe_customer_id)
    answer = _deliver(*stripe_world.inbox.wait_for("customer.updated", account.stripe_customer_id))
    assert answer.status_code == 200 and answer.json()["outcome"] == "account refreshed"
    account.refresh_from_db()
    assert (account.payment_method_brand, account.payment_method_last4, account.payment_method_expires) == (
        "visa",
        "4242",
        "12/2034",
    )


def test_it_catches_up_on_invoices_when_no_webhook_arrived(stripe_world, account):
    from billing import tasks

    invoice_id = _failed_invoice(stripe_world, account)
    stripe_world.inbox.wait_for("invoice.payment_failed", invoice_id)  # sent, but never delivered to Quetzal
    assert tasks.sync_invoices.apply().get() >= 1
    assert Invoice.objects.get(stripe_id=invoice_id).overdue
    assert BillingAccount.objects.get(pk=account.pk).in_arrears
