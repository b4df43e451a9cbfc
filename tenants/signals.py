"""Signals higher apps listen to (tenants imports none of them: it tells, they listen)."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# Sent once the transaction that made a membership has committed: membership_id, via ("invitation", "sso").
# Desktops gives the new member a desktop when the tenant asks for one.
member_joined = Signal()
# Sent after the removal committed: tenant_id, user_id, actor_id, delete_desktops (the admin's choice). Desktops
# deletes the person's desktops in that tenant when asked; otherwise they are kept, as before.
member_left = Signal()


def announce_leave(*, tenant_id: int, user_id: int, actor_id: int | None, delete_desktops: bool) -> None:
    """Tell listeners a person left the tenant, once that has committed."""
    transaction.on_commit(
        lambda: member_left.send(
            sender=None, tenant_id=tenant_id, user_id=user_id, actor_id=actor_id, delete_desktops=delete_desktops
        )
    )


def announce_join(membership_id: int, *, via: str) -> None:
    """Tell listeners of a new member after commit, so nothing they do can undo the join."""
    transaction.on_commit(lambda: member_joined.send(sender=None, membership_id=membership_id, via=via))
