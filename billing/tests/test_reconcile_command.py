"""`billing_reconcile --period`: the ledger against Stripe's own meter sums, per tenant."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing.models import UsageInterval
from billing.periods import floor_hour, month_period
from billing.services import reporting
from billing.tests.conftest import NOWHERE
from billing.tests.helpers import ran
from desktops.tests.factories import DesktopFactory

pytestmark = pytest.mark.stripe


@pytest.fixture
def reported(stripe_world, alice, bob, template):
    """Alice's and Bob's usage earlier this month, all reported."""
    start = max(floor_hour(timezone.now()) - timedelta(hours=5), month_period(timezone.now()).start)
    ran(DesktopFactory(world=alice, template=template), start, start + timedelta(minutes=95, seconds=13))
    ran(DesktopFactory(world=bob, template=template), start, start + timedelta(seconds=61))
    reporting.report_usage()
    return start


def _reconcile(label: str) -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("billing_reconcile", "--period", label, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue() + err.getvalue()
    return 0, out.getvalue()


def test_it_exits_zero_when_the_ledger_and_stripe_agree(reported):
    code, output = _reconcile(reported.strftime("%Y-%m"))
    assert code == 0, output
    alice = next(line for line in output.splitlines() if line.startswith("alice"))
    # 1:35:13 (5713 s, cut at the hour: 0.100000 + 0.058694) reported in full; Stripe's own sum agrees
    assert alice.split()[1:6] == ["1.586944", "0.158694", "1.586944", "0.158694", "0.158694"]
    assert alice.endswith("ok") and "All 2 tenant(s) match." in output


def test_it_exits_non_zero_when_usage_was_not_reported(reported, alice, template):
    ran(
        DesktopFactory(world=alice, template=template, name="late"),
        reported + timedelta(hours=2),
        reported + timedelta(hours=2, minutes=1),
    )
    code, output = _reconcile(reported.strftime("%Y-%m"))
    assert code == 1
    assert "DIFFERENCE" in next(line for line in output.splitlines() if line.startswith("alice"))
    assert next(line for line in output.splitlines() if line.startswith("bob")).endswith("ok")


def test_it_exits_non_zero_when_stripe_did_not_receive_what_was_marked_reported(reported, alice, template):
    # Given a row marked reported that never reached Stripe (a bug, or a lost write)
    ran(
        DesktopFactory(world=alice, template=template, name="ghost"),
        reported + timedelta(hours=3),
        reported + timedelta(hours=3, minutes=6),
    )
    UsageInterval.objects.filter(reported_at__isnull=True).update(reported_at=timezone.now())
    code, output = _reconcile(reported.strftime("%Y-%m"))
    assert code == 1 and "DIFFERENCE" in output


def test_it_fails_clearly_when_stripe_cannot_be_asked(reported, settings):
    settings.STRIPE_API_BASE = NOWHERE
    with pytest.raises(CommandError) as failed:
        call_command("billing_reconcile", "--period", reported.strftime("%Y-%m"), stdout=StringIO())
    assert failed.value.returncode == 2


def test_it_refuses_a_malformed_period(stripe_world):
    with pytest.raises(CommandError) as failed:
        call_command("billing_reconcile", "--period", "2025-13", stdout=StringIO())
    assert failed.value.returncode == 2
