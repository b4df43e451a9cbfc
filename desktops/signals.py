"""Signals other apps listen to (billing meters usage; metrics push live events)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after a guarded state change won: desktop_id, state, at.
desktop_state_changed = Signal()

# Sent when an operation records a step or finishes: operation.
operation_progress = Signal()

# Sent when reconcile has reached a host and listed its domains, before it repairs drift: host_id, at.
# Billing closes usage intervals a crash left open from it (desktops never calls billing).
host_reconciling = Signal()

# Sent when a desktop's new size has taken effect (on its host and in its row): desktop_id, at.
# Billing cuts the open usage row there, so the time after it is charged at the new size's price.
desktop_resized = Signal()
