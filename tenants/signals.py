"""Signals higher apps listen to (tenants imports none of them: it tells, they listen)."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# Sent once the transaction that made a membership has committed: membership_id, via ("invitation", "sso").
# Desktops gives the new member a desktop when the tenant asks for one.
member_joined = Signal()


def announce_join(membership_id: int, *, via: str) -> None:
    """Tell listeners of a new member after commit, so nothing they do can undo the join."""
    transaction.on_commit(lambda: member_joined.send(sender=None, membership_id=membership_id, via=via))
