from billing.models.accounts import BillingAccount, Invoice, StripeCatalog, WebhookEvent
from billing.models.ledger import PriceChange, UsageInterval
from billing.models.reports import UsageReport

__all__ = ["BillingAccount", "Invoice", "PriceChange", "StripeCatalog", "UsageInterval", "UsageReport", "WebhookEvent"]
