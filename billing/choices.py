"""Fixed vocabularies of the billing app."""

from __future__ import annotations

from django.db import models


class EndedBy(models.TextChoices):
    """Why a usage interval ended: the desktop state it moved to, or what closed it."""

    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    SUSPENDED = "suspended", "Paused"
    HIBERNATED = "hibernated", "Hibernated"
    ERROR = "error", "Error"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    HOST_DOWN = "host_down", "Host down"
    REPAIR = "repair", "Closed by reconcile"
    SPLIT = "split", "Split (hour or price change)"
    RESIZE = "resize", "Resized (new size, new price)"
    OTHER = "other", "Other"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"


# An invoice never moves back from these (Stripe's own state machine), whatever order events arrive in.
FINAL_INVOICE_STATUSES = frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE})
