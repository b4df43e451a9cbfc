"""The ledger against what Stripe received, per tenant and period (finance's monthly check)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum

from billing import stripe_api
from billing.models import BillingAccount, StripeCatalog, UsageInterval
from billing.periods import Period, hours
from tenants.models import Tenant

MILLIONTHS = Decimal(1_000_000)


@dataclass
class TenantReconciliation:
    """One tenant's period: ledger, what Quetzal recorded as reported, and Stripe's own sum."""

    tenant: Tenant
    ledger_seconds: int
    ledger_amount: Decimal
    reported_seconds: int
    reported_amount: Decimal
    stripe_amount: Decimal | None  # None: not compared (exempt, or never a Stripe customer)
    running: int
    exempt: bool

    @property
    def ledger_hours(self) -> Decimal:
        return hours(self.ledger_seconds)

    @property
    def reported_hours(self) -> Decimal:
        return hours(self.reported_seconds)

    @property
    def matches(self) -> bool:
        """Every ledger second reported, and Stripe's sum equal to the ledger's cost."""
        if self.exempt:
            return True
        if (self.ledger_seconds, self.ledger_amount) != (self.reported_seconds, self.reported_amount):
            return False
        return (self.stripe_amount or Decimal(0)) == self.ledger_amount


def reconcile_period(*, period: Period) -> list[TenantReconciliation]:
    """Every tenant with usage in the period, or with a Stripe customer, compared line by line."""
    totals = (
        UsageInterval.objects.closed()
        .in_period(period)
        .values("tenant_id")
        .annotate(
            total_seconds=Sum("seconds"),
            total_amount=Sum("amount"),
            reported_seconds=Sum("seconds", filter=Q(reported_at__isnull=False)),
            reported_amount=Sum("amount", filter=Q(reported_at__isnull=False)),
        )
    )
    by_tenant = {line["tenant_id"]: line for line in totals}
    running = dict(
        UsageInterval.objects.open()
        .filter(started_at__lt=period.end)
        .values("tenant_id")
        .annotate(n=Count("pk"))
        .values_list("tenant_id", "n")
    )
    billed = BillingAccount.objects.filter(stripe_customer_id__isnull=False).values_list("tenant_id", flat=True)
    tenant_ids = set(by_tenant) | set(billed)
    accounts = {a.tenant_id: a for a in BillingAccount.objects.filter(tenant_id__in=tenant_ids)}
    catalogs = list(StripeCatalog.objects.all())
    found = []
    for tenant in Tenant.objects.filter(pk__in=tenant_ids).order_by("slug"):
        line = by_tenant.get(tenant.pk, {})
        account = accounts.get(tenant.pk)
        exempt = bool(account and account.exempt)
        stripe_amount = None
        if account is not None and account.stripe_customer_id and not exempt and catalogs:
            value = sum(
                stripe_api.meter_usage_total(
                    meter_id=catalog.meter_id,
                    customer_id=account.stripe_customer_id,
                    start=period.start,
                    end=period.end,
                )
                for catalog in catalogs
                if catalog.currency == account.currency
            )
            stripe_amount = Decimal(value) / MILLIONTHS
        found.append(
            TenantReconciliation(
                tenant=tenant,
                ledger_seconds=line.get("total_seconds") or 0,
                ledger_amount=line.get("total_amount") or Decimal(0),
                reported_seconds=line.get("reported_seconds") or 0,
                reported_amount=line.get("reported_amount") or Decimal(0),
                stripe_amount=stripe_amount,
                running=running.get(tenant.pk, 0),
                exempt=exempt,
            )
        )
    return found
