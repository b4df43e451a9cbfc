"""Hooks into other apps: desktop state changes and hosts going down drive the ledger; price edits are recorded."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction

from billing import conf
from billing.choices import EndedBy
from billing.services import ledger, prices
from desktops.choices import DesktopState

log = logging.getLogger(__name__)


def on_desktop_state_changed(sender, *, desktop_id: int, state: str, at, **kwargs) -> None:
    """Open the interval when a desktop enters running; close it when it enters any other state."""
    if not conf.billing_enabled():
        return
    try:
        # A savepoint: a ledger failure must never undo the state change it follows.
        with transaction.atomic():
            if state == DesktopState.RUNNING:
                ledger.open_interval(desktop_id=desktop_id, at=at)
            else:
                ended_by = state if state in EndedBy.values else EndedBy.OTHER
                ledger.close_open_intervals(desktop_id=desktop_id, at=at, ended_by=ended_by)
    except Exception:  # the repair pass of the billing beat puts the ledger right
        log.exception("usage ledger not updated for desktop %s entering %s", desktop_id, state)


def on_desktop_resized(sender, *, desktop_id: int, at, **kwargs) -> None:
    """A running desktop's new size applies now: its usage row is cut and the rest priced at the new size."""
    if not conf.billing_enabled():
        return
    try:
        with transaction.atomic():  # as for state changes: never undo the resize it follows
            ledger.cut_at_resize(desktop_id=desktop_id, at=at)
    except Exception:  # the repair pass of the billing beat puts the ledger right
        log.exception("usage ledger not cut for desktop %s resized at %s", desktop_id, at)


def on_host_reconciling(sender, *, host_id: int, at, **kwargs) -> None:
    """Reconcile reached a host: close the intervals a crash left open, from the host's own view."""
    ledger.repair_open_intervals(host_id=host_id, now=at)


def on_host_went_down(sender, *, host_id: int, at, **kwargs) -> None:
    """Desktops on a silent host stopped being usable when it was last heard from: close their usage."""
    # Inside the mark-down's transaction and not swallowed: the ledger and the host state agree or
    # neither changes (the next heartbeat pass marks it down again).
    ledger.close_host_intervals(host_id=host_id, at=at)


def on_template_pre_save(sender, instance, raw: bool = False, **kwargs) -> None:
    """Remember the stored price, so a save that changes it is recorded right after it."""
    if raw or instance.pk is None or not conf.billing_enabled():
        return
    stored = type(instance).objects.filter(pk=instance.pk).values_list("price_per_hour", flat=True).first()
    if stored is not None and Decimal(stored) != Decimal(str(instance.price_per_hour)):
        instance._billing_previous_price = Decimal(stored)


def on_template_post_save(sender, instance, raw: bool = False, **kwargs) -> None:
    """A template's price edited directly (admin, shell): the new price applies from now on."""
    previous = instance.__dict__.pop("_billing_previous_price", None)
    if previous is None or raw:
        return
    prices.record_template_edit(template=instance, previous=previous)
