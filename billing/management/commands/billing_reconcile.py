"""`billing_reconcile --period YYYY-MM`: ledger versus what Stripe received, per tenant; non-zero on any difference."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing import conf
from billing.errors import StripeUnavailable
from billing.periods import parse_period
from billing.services.reconcile import reconcile_period
from quetzal.errors import ServiceError


class Command(BaseCommand):
    help = "Compare each tenant's ledger hours and cost with what was reported to Stripe; exit 1 on a difference."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--period", required=True, help="The month to check, YYYY-MM (UTC).")

    def handle(self, *args, period: str, **options) -> None:
        if not conf.billing_enabled():
            raise CommandError("Billing is not enabled (BILLING_ENABLED is off).", returncode=2)
        try:
            found = parse_period(period)
            lines = reconcile_period(period=found)
        except StripeUnavailable as error:
            raise CommandError(f"Stripe could not be asked: {error.detail}", returncode=2)
        except ServiceError as error:
            raise CommandError(error.detail, returncode=2)
        currency = conf.currency().upper()
        self.stdout.write(f"Period {found.label} ({found.start:%Y-%m-%d} to {found.end:%Y-%m-%d} UTC), {currency}")
        header = (
            f"{'tenant':<24} {'ledger_hours':>14} {'ledger_cost':>14} {'reported_hours':>14} "
            f"{'reported_cost':>14} {'stripe_cost':>14}  status"
        )
        self.stdout.write(header)
        differences = 0
        for line in lines:
            stripe_cost = "-" if line.stripe_amount is None else f"{line.stripe_amount:.6f}"
            if line.exempt:
                status = "exempt"
            elif line.matches:
                status = "ok"
            else:
                status = "DIFFERENCE"
                differences += 1
            if line.running:
                status += f" ({line.running} running, not yet closed)"
            self.stdout.write(
                f"{line.tenant.slug:<24} {line.ledger_hours:>14.6f} {line.ledger_amount:>14.6f} "
                f"{line.reported_hours:>14.6f} {line.reported_amount:>14.6f} {stripe_cost:>14}  {status}"
            )
        if differences:
            self.stderr.write(f"{differences} tenant(s) differ between the ledger and Stripe.")
            raise SystemExit(1)
        self.stdout.write(f"All {len(lines)} tenant(s) match.")
