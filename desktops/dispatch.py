"""The one way the desktops services hand work to Celery: by task name, once the transaction commits.

Services never import `desktops.tasks` (the tasks import the services); they name the task here instead.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from quetzal.errors import ServiceError

RUN_OPERATION = "desktops.tasks.run_operation"
REFILL_POOLS = "desktops.tasks.refill_pools"
APPLY_FIREWALL = "desktops.tasks.apply_firewall"
REFILL_DISK_SPARES = "desktops.tasks.refill_disk_spares"
PROBE_READINESS = "desktops.tasks.probe_readiness"
FILES_CALL = "desktops.tasks.files_call"
# Every task name this module sends (a test checks each is a registered task).
TASK_NAMES = (RUN_OPERATION, REFILL_POOLS, APPLY_FIREWALL, REFILL_DISK_SPARES, PROBE_READINESS, FILES_CALL)


def send_on_commit(task_name: str, *args: object, task_id: str | None = None) -> None:
    """Queue `task_name(*args)` when the current transaction commits, under `task_id` if given.

    A signature by name runs the registered task's own apply_async, so eager mode (tests, no worker)
    runs it in-process; where the task is not registered it is sent to the broker by name.
    """

    def send() -> None:
        current_app.signature(task_name, args=args).apply_async(task_id=task_id)

    transaction.on_commit(send)


def run_operation(operation_id: int, *, task_id: str | None = None) -> None:
    """A worker carries out the operation once its row is committed."""
    send_on_commit(RUN_OPERATION, operation_id, task_id=task_id)


def refill_pools() -> None:
    """Top the pools up in the background once the change that emptied them is committed."""
    send_on_commit(REFILL_POOLS)


def apply_firewall(desktop_ids: list[int]) -> None:
    """Re-render and redefine these desktops' filters once the rule change is committed."""
    send_on_commit(APPLY_FIREWALL, list(desktop_ids))


def refill_disk_spares(host_id: int) -> None:
    """Make the host's next spare encrypted disk in the background, off the start that used one."""
    send_on_commit(REFILL_DISK_SPARES, [host_id])


def probe_readiness(desktop_id: int) -> None:
    """Someone waits for this booting desktop: look whether its guest is ready now."""
    send_on_commit(PROBE_READINESS, desktop_id)


def files_queue(host_name: str) -> str | None:
    """The queue of the worker on the home disk's host, when file work is routed per host."""
    return f"files.{host_name}" if getattr(settings, "HOME_FILES_HOST_QUEUES", False) else None


def files_call(home_id: int, op: str, args: dict[str, Any], *, host_name: str) -> Any:
    """Run one file operation on a worker of the home's host and wait for its answer (the page needs it).

    The answer travels back as JSON on a one-off Redis list; a ServiceError on the worker is raised here
    with its code, message and status. In eager mode (tests, one process) the task runs in-process.
    """
    timeout = int(getattr(settings, "HOME_FILES_TIMEOUT_S", 120))
    if current_app.conf.task_always_eager:
        answer = current_app.signature(FILES_CALL, args=(home_id, op, args)).apply().get()
    else:
        import redis  # only a real broker deployment needs a client of its own

        reply_to = f"quetzal:files:reply:{uuid.uuid4().hex}"
        # redis-py's own socket timeout (5 s by default) would end the wait long before the host answers a first
        # use (a new home disk) or a large download: the socket waits a little longer than the reply may take.
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout + 5)
        current_app.signature(FILES_CALL, args=(home_id, op, args), kwargs={"reply_to": reply_to}).apply_async(
            queue=files_queue(host_name), expires=timeout
        )
        try:
            got = client.blpop([reply_to], timeout=timeout)
        except redis.exceptions.TimeoutError:
            # Should the socket still give up first: the same "no answer in time", not a 500.
            got = None
        if got is None:
            raise ServiceError(
                gettext("The host keeping your files did not answer in time."), code="files_timeout", status=504
            )
        answer = json.loads(got[1])
    if not answer.get("ok"):
        raise ServiceError(answer["detail"], code=answer["code"], status=answer["status"])
    return answer.get("result")
