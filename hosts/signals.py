"""Signals the hosts app sends so higher apps can react without hosts importing them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the transaction that marked a host down: host_id, at (when it was last heard from).
# Billing closes the usage of the desktops on it; a receiver that raises undoes the mark-down.
host_went_down = Signal()

# Sent inside the transaction of the heartbeat that found a host answering again: host_id, at.
host_came_back = Signal()
