"""Celery tasks: thin wrappers that take ids and call one service."""

from __future__ import annotations

import json
import socket

from celery import shared_task
from django.conf import settings

from desktops.models import Operation
from desktops.services import (
    disk_keys,
    disposable,
    execution,
    files,
    idle,
    network,
    pools,
    readiness,
    reconcile,
    warm_personal,
)
from hosts.hypervisor import HostUnavailable
from hosts.models import Host
from quetzal.errors import ServiceError

# Backoff stays far under the broker's visibility timeout, so a retry never overlaps a redelivery.
RETRY_BACKOFF_MAX_S = 120
MAX_RETRIES = 8


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RETRIES)
def run_operation(self, operation_id: int) -> None:
    """Carry out one lifecycle operation; only an unreachable host is retried."""
    try:
        execution.run(operation_id, worker=f"{socket.gethostname()}:{self.request.hostname or ''}")
    except HostUnavailable as error:
        if self.request.retries >= self.max_retries:
            operation = Operation.objects.filter(pk=operation_id).first()
            if operation is not None:
                execution.fail_for_good(operation, f"The host stayed unreachable: {error}")
            return
        raise self.retry(exc=error, countdown=min(RETRY_BACKOFF_MAX_S, 2 ** (self.request.retries + 1)))


@shared_task(acks_late=True)
def refill_pools() -> int:
    """Beat: top every pool up to its minimum of warm desktops."""
    return pools.refill_all()


@shared_task(acks_late=True)
def watch_readiness() -> int:
    """Mark the booting desktops whose guests are now ready for input."""
    return readiness.probe_all()


@shared_task(acks_late=True, expires=10)
def probe_readiness(desktop_id: int) -> bool:
    """Look once whether one booting desktop's guest is ready (asked for while someone waits on it)."""
    return readiness.probe_one(desktop_id)


@shared_task(acks_late=True)
def apply_firewall(desktop_ids: list[int]) -> int:
    """Redefine the filters of these desktops from the current rules (applied live by libvirt)."""
    return network.reapply(desktop_ids)


@shared_task(acks_late=True)
def refill_disk_spares(host_ids: list[int] | None = None) -> int:
    """Beat (all hosts) or after a claim (one host): keep spare encrypted disks ready."""
    return disk_keys.refill_spares(host_ids=host_ids)


@shared_task(acks_late=True)
def enforce_idle() -> int:
    """Beat: apply idle and maximum-session policies."""
    return idle.enforce()


@shared_task(acks_late=True)
def warm_personal_desktops() -> int:
    """Beat: start stopped personal desktops shortly before their owners usually arrive (tenants that opt in)."""
    return warm_personal.warm_all()


@shared_task(acks_late=True)
def reconcile_all() -> None:
    """Beat: delete expired disposable desktops, then one reconcile task per host."""
    disposable.expire_due()
    for host_id in Host.objects.values_list("pk", flat=True):
        reconcile_host.delay(host_id)


@shared_task(acks_late=True)
def reconcile_host(host_id: int) -> None:
    """Compare one host's domains with the database and repair drift."""
    reconcile.reconcile_host(host_id)


@shared_task(acks_late=False)
def files_call(home_id: int, op: str, args: dict, reply_to: str | None = None) -> dict:
    """One file-manager operation on the home's host; the answer (or refusal) goes back as data.

    Not acks_late: a redelivered upload after a crash would write the file a second time, and the web side
    has stopped waiting by then anyway.
    """
    try:
        answer = {"ok": True, "result": files.perform(home_id=home_id, op=op, args=args)}
    except ServiceError as error:
        answer = {"ok": False, "code": error.code, "detail": error.detail, "status": error.status}
    if reply_to:
        import redis  # the reply channel exists only with a real broker

        client = redis.Redis.from_url(settings.REDIS_URL)
        client.rpush(reply_to, json.dumps(answer))
        client.expire(reply_to, 300)
    return answer
