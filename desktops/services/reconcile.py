"""Reconcile: the hypervisor is the truth about VMs, the database the truth about intent."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from desktops.choices import (
    AT_REST_STATES,
    SETTLED_STATES,
    STOPPABLE_STATES,
    TRANSITIONAL_STATES,
    DesktopState,
    OperationStatus,
)
from desktops.models import Desktop, Operation, OrphanSighting
from desktops.services import execution, progress
from desktops.signals import host_reconciling
from desktops.state import transition
from hosts.hypervisor import DomainInfo, DomainNotFound, DomainState, HostUnavailable, get_hypervisor
from hosts.models import Host
from hosts.services.installation import is_ours
from tenants import events

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What one pass changed, for logs and tests."""

    failed_operations: list[int] = field(default_factory=list)
    repaired: dict[int, str] = field(default_factory=dict)
    stopped_domains: list[str] = field(default_factory=list)
    orphans_destroyed: list[str] = field(default_factory=list)
    orphans_pending: list[str] = field(default_factory=list)
    foreign_domains: list[str] = field(default_factory=list)


def fail_stuck_operations(now: datetime, host_id: int | None = None) -> list[int]:
    """Fail operations whose worker has gone silent (killed, lost) past the timeout."""
    running_cutoff = now - timedelta(seconds=settings.OPERATION_STUCK_AFTER_S)
    queued_cutoff = now - timedelta(seconds=settings.OPERATION_QUEUED_TIMEOUT_S)
    stuck = Operation.objects.filter(
        Q(status=OperationStatus.RUNNING, heartbeat_at__lt=running_cutoff)
        | Q(status=OperationStatus.QUEUED, queued_at__lt=queued_cutoff)
    )
    if host_id is not None:
        stuck = stuck.filter(Q(desktop__host_id=host_id) | Q(desktop__host__isnull=True))
    failed = []
    for operation in stuck.select_related("desktop"):
        silent = "never started" if operation.status == OperationStatus.QUEUED else "its worker went silent"
        if progress.fail(
            operation, code="worker_lost", message=f"Timed out: {silent} (step: {operation.step or '-'})."
        ):
            failed.append(operation.pk)
    return failed


def _adopt(desktop: Desktop, domain: DomainInfo | None, has_managed_save: bool, report: ReconcileReport) -> None:
    """Make a desktop left mid-transition (no operation in flight) match what the host shows."""
    if desktop.state == DesktopState.DELETING:
        execution.finish_delete(desktop)
        report.repaired[desktop.pk] = "deleted"
        return
    if domain is None:
        if desktop.state in (DesktopState.REQUESTED, DesktopState.PROVISIONING):
            # Partly made: remove whatever was made so nothing is left behind on the host.
            execution.remove_from_host(desktop, release=True)
            reason = "Provisioning was interrupted; delete this desktop or rebuild it."
        else:
            reason = "Its VM disappeared from the host."
        transition(desktop, DesktopState.ERROR, reason=reason)
        report.repaired[desktop.pk] = DesktopState.ERROR
        return
    if domain.state == DomainState.PAUSED:
        target = DesktopState.SUSPENDED
    elif domain.state.is_active:
        target = DesktopState.RUNNING
    else:
        target = DesktopState.HIBERNATED if has_managed_save else DesktopState.STOPPED
    if desktop.state == DesktopState.PROVISIONING and target == DesktopState.RUNNING:
        transition(desktop, DesktopState.STARTING)
    if not transition(desktop, target, reason="Recovered after an interrupted operation"):
        transition(desktop, DesktopState.ERROR, reason=f"Found {domain.state} on the host while {desktop.state}.")
        target = DesktopState.ERROR
    report.repaired[desktop.pk] = target


def _compare(desktop: Desktop, domain: DomainInfo | None, hv, report: ReconcileReport) -> None:
    """A settled desktop whose VM drifted from the record."""
    if domain is None:
        if desktop.state in SETTLED_STATES:
            transition(desktop, DesktopState.ERROR, reason="Its VM disappeared from the host.")
            report.repaired[desktop.pk] = DesktopState.ERROR
        return
    active = domain.state.is_active
    if active and desktop.state in (*AT_REST_STATES, DesktopState.ERROR):
        # Running but should not be: power it off (forced: this loop must not wait on guests).
        hv.destroy(domain.name)
        report.stopped_domains.append(domain.name)
    elif not active and desktop.state in STOPPABLE_STATES:
        transition(desktop, DesktopState.STOPPING)
        transition(desktop, DesktopState.STOPPED, reason="Shut down from inside the desktop.")
        report.repaired[desktop.pk] = DesktopState.STOPPED


def _handle_orphans(host: Host, hv, orphans: list[DomainInfo], now: datetime, report: ReconcileReport) -> None:
    """Destroy unclaimed Quetzal domains (and their volumes) once they outlive the grace period."""
    grace = timedelta(seconds=settings.ORPHAN_GRACE_S)
    seen_names = set()
    for domain in orphans:
        seen_names.add(domain.name)
        sighting, _ = OrphanSighting.objects.get_or_create(
            host=host, domain_name=domain.name, defaults={"desktop_id": domain.desktop_id, "first_seen_at": now}
        )
        if now - sighting.first_seen_at < grace:
            report.orphans_pending.append(domain.name)
            continue
        try:
            if domain.state != DomainState.SHUTOFF:
                hv.destroy(domain.name)
            hv.undefine(domain.name)
        except DomainNotFound:
            pass
        for volume in (f"{domain.name}.qcow2", f"{domain.name}-seed.iso"):
            hv.volume_delete(host.storage_pool, volume)
        events.orphan_destroyed(host=host, domain=domain.name, desktop_id=domain.desktop_id)
        log.warning("destroyed orphan domain %s on %s", domain.name, host.name)
        sighting.delete()
        report.orphans_destroyed.append(domain.name)
    OrphanSighting.objects.filter(host=host).exclude(domain_name__in=seen_names).delete()


def reconcile_host(host_id: int, *, now: datetime | None = None) -> ReconcileReport | None:
    """One pass over one host; None when the host cannot be reached (heartbeats mark it down)."""
    now = now or timezone.now()
    report = ReconcileReport(failed_operations=fail_stuck_operations(now, host_id))
    host = Host.objects.filter(pk=host_id).first()
    if host is None:
        return None
    try:
        hv = get_hypervisor(host.uri)
        domains = hv.list_domains()
    except HostUnavailable as error:
        log.info("reconcile skipped %s: %s", host.name, error)
        return None
    # A crash may have left usage intervals open; billing listens and closes them from the host's own view.
    host_reconciling.send(sender=Host, host_id=host_id, at=now)
    by_desktop = {d.desktop_id: d for d in domains if d.desktop_id is not None}
    busy = set(Operation.objects.in_flight().filter(desktop__host=host).values_list("desktop_id", flat=True))
    desktops = Desktop.objects.filter(host=host).exclude(state=DesktopState.DELETED).select_related("tenant")
    known, claimed_names = set(), set()
    for desktop in desktops:
        known.add(desktop.pk)
        claimed_names.add(desktop.domain_name)
        if desktop.pk in busy:
            continue  # an operation is moving it; its worker (or the stuck-operation check) decides
        domain = by_desktop.get(desktop.pk)
        if domain is not None and domain.name != desktop.domain_name:
            domain = None
        try:
            if desktop.state in TRANSITIONAL_STATES:
                saved = domain is not None and not domain.state.is_active and hv.has_managed_save(domain.name)
                _adopt(desktop, domain, saved, report)
            else:
                _compare(desktop, domain, hv, report)
        except DomainNotFound:
            continue
    # Desktops never placed (host unset) that were interrupted while provisioning.
    unplaced = Desktop.objects.filter(
        host__isnull=True, state__in=(DesktopState.REQUESTED, DesktopState.PROVISIONING, DesktopState.DELETING)
    )
    for desktop in unplaced.exclude(pk__in=Operation.objects.in_flight().values("desktop_id")):
        _adopt(desktop, None, False, report)
    claimed_names = {spec_name for spec_name in (d.domain_name for d in desktops)}
    orphans = [
        d for d in domains if d.desktop_id is not None and (d.desktop_id not in known or d.name not in claimed_names)
    ]
    # Another installation's desktops on a shared host are not ours to destroy (hosts.services.installation).
    report.foreign_domains = sorted(d.name for d in orphans if not is_ours(d.installation))
    orphans = [d for d in orphans if is_ours(d.installation)]
    _handle_orphans(host, hv, orphans, now, report)
    return report
