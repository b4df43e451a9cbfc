"""The tenant admin's Billing page, the operators' usage page, CSV exports, and the billing API."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal

import pytest

from billing.models import BillingAccount, Invoice
from billing.services import ledger
from billing.tests.helpers import at, run
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory
from tests.factories import UserFactory
from tests.fixtures import api_client, login_client

pytestmark = pytest.mark.usefixtures("billing_on")


@pytest.fixture
def january(alice, bob, template, image):
    """January 2025: alice's member 2 h on Ubuntu, alice's admin 30 min on Windows; bob 1 h."""
    windows = DesktopTemplateFactory(name="Windows 11", image=image, price_per_hour=Decimal("0.50"))
    run(DesktopFactory(world=alice, template=template, name="m"), "2025-01-02 10:00:00", "2025-01-02 12:00:00")
    admins = DesktopFactory(world=alice, user=alice.admin, template=windows, name="w")
    run(admins, "2025-01-03 09:15:00", "2025-01-03 09:45:00")
    run(DesktopFactory(world=bob, template=template, name="b"), "2025-01-02 10:00:00", "2025-01-02 11:00:00")
    return alice


def _chart(content: bytes) -> dict:
    found = re.search(rb'<script id="billing-chart-data" type="application/json">(.*?)</script>', content, re.S)
    return json.loads(found.group(1))


def test_it_shows_hours_and_cost_per_template_person_and_day(january, bob):
    page = login_client(january.admin, january.tenant).get("/manage/billing/?period=2025-01")
    assert page.status_code == 200
    text = page.content.decode()
    # Then the totals are alice's only: 2.5 hours, 0.20 + 0.25
    assert re.search(r'data-testid="billing-hours">2\.50<', text)
    assert re.search(r'data-testid="billing-cost">0\.45 <small>USD<', text)
    templates = text.split('data-testid="billing-templates"')[1].split("</table>")[0]
    assert (
        "Windows 11</td><td>0.50</td><td>0.25" in templates and "Ubuntu Desktop</td><td>2.00</td><td>0.20" in templates
    )
    people = text.split('data-testid="billing-people"')[1].split("</table>")[0]
    assert january.member.email in people and january.admin.email in people
    assert bob.member.email not in text
    # And the chart has every day of January, with the usage on the 2nd and the 3rd
    chart = _chart(page.content)
    assert len(chart["x"]) == 31 and chart["hours"][1:3] == [2.0, 0.5] and chart["cost"][1:3] == [0.2, 0.25]
    assert sum(chart["hours"]) == 2.5


def test_it_counts_a_desktop_still_running_up_to_now(alice, template):
    desktop = DesktopFactory(world=alice, template=template)
    ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-01 00:00:00"))
    page = login_client(alice.admin, alice.tenant).get("/manage/billing/")
    assert page.status_code == 200
    assert b'data-testid="billing-running">1<' in page.content
    assert float(re.search(rb'billing-hours">([\d.]+)<', page.content).group(1)) > 0


def test_it_exports_the_tenants_ledger_as_csv(january, bob):
    response = login_client(january.owner, january.tenant).get("/manage/billing/usage.csv?period=2025-01")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {r["tenant"] for r in rows} == {"alice"}
    assert [r["seconds"] for r in rows] == ["3600", "3600", "1800"]
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("0.45")


def test_it_keeps_the_billing_page_to_tenant_admins(january):
    assert login_client(january.member, january.tenant).get("/manage/billing/").status_code == 403
    assert login_client(january.member, january.tenant).get("/manage/billing/usage.csv").status_code == 403


def test_it_shows_operators_every_tenants_usage_and_exports_it(january, bob):
    staff = UserFactory(email="ops@quetzal.test", is_staff=True)
    client = login_client(staff)
    page = client.get("/operations/billing/?period=2025-01")
    assert page.status_code == 200
    table = page.content.decode().split('data-testid="operator-usage"')[1]
    assert "Alice" in table and "Bob" in table and "0.45" in table and "0.10" in table
    rows = list(
        csv.DictReader(io.StringIO(client.get("/operations/billing/usage.csv?period=2025-01").content.decode()))
    )
    assert {r["tenant"] for r in rows} == {"alice", "bob"} and len(rows) == 4


def test_it_keeps_operator_pages_from_everyone_else(january):
    for user in (january.owner, january.member):
        response = login_client(user, january.tenant).get("/operations/billing/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_it_lists_the_ledger_and_invoices_in_the_api(january, bob):
    api = api_client(january.admin, january.tenant)
    usage = api.get("/api/v1/billing/usage/?period=2025-01").json()
    assert usage["count"] == 3 and {r["person_email"] for r in usage["results"]} == {
        january.member.email,
        january.admin.email,
    }
    assert sorted(r["amount"] for r in usage["results"]) == ["0.100000", "0.100000", "0.250000"]
    account = BillingAccount.objects.create(tenant=january.tenant, currency="usd", stripe_customer_id="cus_a")
    Invoice.objects.create(
        tenant=january.tenant,
        account=account,
        stripe_id="in_a",
        status="open",
        currency="usd",
        amount_due=Decimal("12.34"),
        payment_failed=True,
    )
    [invoice] = api.get("/api/v1/billing/invoices/").json()["results"]
    assert (invoice["stripe_id"], invoice["amount_due"], invoice["overdue"]) == ("in_a", "12.34", True)
    assert api.get("/api/v1/billing/usage/?period=2025-13").json()["code"] == "invalid_period"


def test_it_keeps_the_billing_api_to_tenant_admins(january):
    response = api_client(january.member, january.tenant).get("/api/v1/billing/usage/")
    assert response.status_code == 403 and response.json()["code"] == "admin_required"


def test_it_keeps_typed_names_from_running_as_spreadsheet_formulas(alice, template):
    desktop = DesktopFactory(world=alice, template=template, name='=HYPERLINK("http://evil.test","x")')
    run(desktop, "2025-01-02 10:00:00", "2025-01-02 10:10:00")
    response = login_client(alice.admin, alice.tenant).get("/manage/billing/usage.csv?period=2025-01")
    [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert row["desktop"] == '\'=HYPERLINK("http://evil.test","x")'
