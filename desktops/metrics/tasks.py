"""Celery tasks of the metrics package: thin wrappers over collection and rollups."""

from __future__ import annotations

import logging

from celery import shared_task

from desktops.metrics import collection, conf, partitions, rollups
from hosts.hypervisor import HypervisorError

log = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def collect_all() -> int:
    """Beat (every METRICS_INTERVAL_S): one collection task per host, so a slow host delays only itself."""
    host_ids = collection.hosts_to_collect()
    for host_id in host_ids:
        # A reading that waited longer than an interval in the queue is worth less than the next one.
        collect_host.apply_async(args=[host_id], expires=conf.interval_s() * 2)
    return len(host_ids)


@shared_task(acks_late=True, ignore_result=True)
def collect_host(host_id: int) -> int:
    """Read, store and push one host's figures; an unreachable host is skipped until the next beat."""
    try:
        result = collection.collect_host(host_id=host_id)
    except HypervisorError as error:
        # The heartbeat marks the host down; retrying here would only pile readings up.
        log.info("metrics of host %s not collected: %s", host_id, error)
        return 0
    return result.desktops if result else 0


@shared_task(acks_late=True, ignore_result=True)
def rollup() -> None:
    """Beat (every minute): per-minute and per-hour summaries."""
    rollups.rollup()


@shared_task(acks_late=True, ignore_result=True)
def prune() -> None:
    """Beat (every 10 minutes): drop what is past each resolution's retention, then make the coming days' partitions."""
    rollups.prune()
    # After the prune, so a partition that cannot be made now (a lock timeout) never holds retention up; inserts
    # meanwhile land in the default partition and move into their day on the next run.
    partitions.ensure()
