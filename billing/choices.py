"""Fixed vocabularies of the billing app."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class EndedBy(models.TextChoices):
    """Why a usage interval ended: the desktop state it moved to, or what closed it."""

    STOPPING = "stopping", _("Stopping")
    STOPPED = "stopped", _("Stopped")
    SUSPENDED = "suspended", _("Paused")
    HIBERNATED = "hibernated", _("Hibernated")
    ERROR = "error", _("Error")
    DELETING = "deleting", _("Deleting")
    DELETED = "deleted", _("Deleted")
    HOST_DOWN = "host_down", _("Host down")
    REPAIR = "repair", _("Closed by reconcile")
    SPLIT = "split", _("Split (hour or price change)")
    RESIZE = "resize", _("Resized (new size, new price)")
    OTHER = "other", _("Other")


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    OPEN = "open", _("Open")
    PAID = "paid", _("Paid")
    VOID = "void", _("Void")
    UNCOLLECTIBLE = "uncollectible", _("Uncollectible")


# An invoice never moves back from these (Stripe's own state machine), whatever order events arrive in.
FINAL_INVOICE_STATUSES = frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE})
