"""Heartbeats: refresh what hosts report, and mark silent hosts down."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from hosts import conf, scheduling
from hosts.choices import HostState
from hosts.hypervisor import HypervisorError, MemoryFacts, get_hypervisor
from hosts.models import Host
from hosts.services.devices import sync_devices
from hosts.services.hosts import host_facts
from hosts.signals import host_came_back, host_went_down
from quetzal.errors import NotFound
from tenants import events

log = logging.getLogger(__name__)


def _stale(now: datetime) -> Q:
    """Hosts not heard from within HOST_DOWN_AFTER_S (never-heard hosts count from creation)."""
    cutoff = now - timedelta(seconds=conf.host_down_after_s())
    return Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at__isnull=True, created_at__lt=cutoff)


def heartbeat(*, host_id: int) -> Host:
    """Ask the host for its facts; up on an answer, the error recorded (and down once stale) if not."""
    host = Host.objects.filter(pk=host_id).first()
    if host is None:
        raise NotFound(gettext("Host %(host_id)s does not exist.") % {"host_id": host_id})
    now = timezone.now()
    hypervisor = get_hypervisor(host.uri)
    try:
        info = hypervisor.host_info()
    except HypervisorError as exc:
        _record_failure(host, str(exc), now)
        host.refresh_from_db()
        return host
    try:
        memory = hypervisor.memory_facts()
    except HypervisorError as exc:
        # Up all the same; its desktops count at their whole allocation until they are measured again.
        log.warning("memory of %s (%s) could not be measured: %s", host.name, host.uri, exc)
        memory = MemoryFacts(available_mib=info.free_memory_mib)
    with transaction.atomic():
        came_back = Host.objects.filter(pk=host.pk).exclude(state=HostState.UP).exists()
        Host.objects.filter(pk=host.pk).update(
            **host_facts(info), state=HostState.UP, last_heartbeat_at=now, last_error=""
        )
        sync_devices(host, info)
        if came_back:
            events.host_up(host=host, previous=host.state)
            host_came_back.send(sender=Host, host_id=host.pk, at=now)
    store_memory_facts(host_id=host.pk, facts=memory)
    # Its own short transaction: the host row lock it takes is held only while it counts.
    scheduling.resync_counters(host.pk)
    host.refresh_from_db()
    return host


def store_memory_facts(*, host_id: int, facts: MemoryFacts) -> None:
    """Keep what a heartbeat learnt of a host's memory: available, merged pages (KSM) and each guest's use.

    Placement under overcommit reads these (hosts.scheduling.filters' RamFilter and SwapGuardFilter).
    """
    with transaction.atomic():
        Host.objects.filter(pk=host_id).update(
            free_memory_mib=scheduling.bounded_mib(facts.available_mib),
            merged_memory_mib=scheduling.bounded_mib(facts.merged_mib),
            memory_merging=facts.merging,
        )
        scheduling.record_guest_memory(host_id, {guest.desktop_id: guest.used_mib for guest in facts.guests})


def _record_failure(host: Host, error: str, now: datetime) -> None:
    log.warning("heartbeat of %s (%s) failed: %s", host.name, host.uri, error)
    with transaction.atomic():
        Host.objects.filter(pk=host.pk).update(last_error=error[:2000], last_error_at=now)
        _mark_down(Host.objects.filter(pk=host.pk), now, error)


def _mark_down(hosts, now: datetime, error: str = "") -> list[int]:
    """Mark the stale ones among hosts down, each with a guarded update; return the ids marked."""
    marked = []
    for host in hosts.filter(_stale(now)).exclude(state=HostState.DOWN):
        # Re-checked in the UPDATE: a heartbeat that landed meanwhile keeps the host up.
        if (
            Host.objects.filter(pk=host.pk)
            .filter(_stale(now))
            .exclude(state=HostState.DOWN)
            .update(state=HostState.DOWN)
        ):
            marked.append(host.pk)
            # Desktops on a silent host stopped being usable when it was last heard from.
            host_went_down.send(sender=Host, host_id=host.pk, at=host.last_heartbeat_at or now)
            events.host_down(host=host, last_heartbeat_at=host.last_heartbeat_at, error=error or host.last_error)
    return marked


def mark_stale_hosts_down() -> list[int]:
    """Mark every host silent for longer than HOST_DOWN_AFTER_S down; return their ids."""
    now = timezone.now()
    with transaction.atomic():
        return _mark_down(Host.objects.all(), now)
