"""The one way the desktops services hand work to Celery: by task name, once the transaction commits.

Services never import `desktops.tasks` (the tasks import the services); they name the task here instead.
"""

from __future__ import annotations

from collections.abc import Callable

from celery import current_app
from django.db import transaction

RUN_OPERATION = "desktops.tasks.run_operation"
REFILL_POOLS = "desktops.tasks.refill_pools"
APPLY_FIREWALL = "desktops.tasks.apply_firewall"
REFILL_DISK_SPARES = "desktops.tasks.refill_disk_spares"
# Every task name this module sends (a test checks each is a registered task).
TASK_NAMES = (RUN_OPERATION, REFILL_POOLS, APPLY_FIREWALL, REFILL_DISK_SPARES)


def send_on_commit(task_name: str, *args: object, sent: Callable[[str], None] | None = None) -> None:
    """Queue `task_name(*args)` when the current transaction commits; `sent` gets the Celery task id.

    A signature by name runs the registered task's own apply_async, so eager mode (tests, no worker)
    runs it in-process; where the task is not registered it is sent to the broker by name.
    """

    def send() -> None:
        result = current_app.signature(task_name, args=args).apply_async()
        if sent is not None:
            sent(result.id or "")

    transaction.on_commit(send)


def run_operation(operation_id: int, *, sent: Callable[[str], None] | None = None) -> None:
    """A worker carries out the operation once its row is committed."""
    send_on_commit(RUN_OPERATION, operation_id, sent=sent)


def refill_pools() -> None:
    """Top the pools up in the background once the change that emptied them is committed."""
    send_on_commit(REFILL_POOLS)


def apply_firewall(desktop_ids: list[int]) -> None:
    """Re-render and redefine these desktops' filters once the rule change is committed."""
    send_on_commit(APPLY_FIREWALL, list(desktop_ids))


def refill_disk_spares(host_id: int) -> None:
    """Make the host's next spare encrypted disk in the background, off the start that used one."""
    send_on_commit(REFILL_DISK_SPARES, [host_id])
