"""Collect one host's desktop and host figures in one libvirt call, store them and push them live."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from desktops.choices import DesktopState
from desktops.metrics import conf, groups, live
from desktops.metrics.models import DesktopSample, HostSample
from desktops.metrics.rates import Counters, Rates, rates, total
from desktops.models import Desktop
from hosts.choices import HostState
from hosts.hypervisor import DomainStats, Hypervisor, HypervisorError, NodeStats, get_hypervisor
from hosts.models import Host

log = logging.getLogger(__name__)

KIB_PER_MIB = 1024


@dataclass(frozen=True)
class Collected:
    """What one collection of one host stored."""

    host_id: int
    at: datetime | None
    desktops: int
    skipped: bool = False


def _lock_key(host_id: int) -> str:
    return f"quetzal:metrics:collect:{host_id}"


def collect_host(
    *, host_id: int, now: datetime | None = None, hypervisor: Hypervisor | None = None
) -> Collected | None:
    """Read every desktop of one host with a single getAllDomainStats call; store and push the figures."""
    host = Host.objects.filter(pk=host_id).first()
    if host is None:
        return None
    # Beat fires every few seconds whatever happens; a slow host must not pile collections onto itself.
    lock_s = max(1, int(conf.interval_s() * 2))
    if not cache.add(_lock_key(host_id), 1, timeout=lock_s):
        return Collected(host_id=host_id, at=None, desktops=0, skipped=True)
    try:
        connection = hypervisor or get_hypervisor(host.uri)
        stats = connection.all_domain_stats()
        at = now or timezone.now()
        return _store(host, stats, at, node=_node_stats(connection, host))
    finally:
        cache.delete(_lock_key(host_id))


def _node_stats(connection: Hypervisor, host: Host) -> NodeStats | None:
    """The host's own figures; a host (or a driver) that cannot give them leaves them empty."""
    try:
        return connection.node_stats()
    except (HypervisorError, AttributeError):
        log.info("host %s gave no node statistics", host.pk)
        return None


def _node_figures(host: Host, node: NodeStats | None, at: datetime) -> dict:
    """HostSample fields from node statistics: CPU % from the counters' change since the last collection."""
    if node is None:
        return {}
    figures = {
        "node_cpu_busy_ns": node.cpu_busy_ns,
        "node_cpu_total_ns": node.cpu_total_ns,
        "node_memory_used_mib": float(max(0, node.memory_total_mib - node.memory_available_mib)),
        "node_disk_total_bytes": node.disk_total_bytes,
        "node_disk_used_bytes": node.disk_used_bytes,
    }
    max_gap = timedelta(seconds=max(60.0, 12 * conf.interval_s()))
    previous = (
        HostSample.objects.filter(host_id=host.pk, at__lt=at, at__gte=at - max_gap, node_cpu_total_ns__isnull=False)
        .order_by("-at")
        .values_list("node_cpu_busy_ns", "node_cpu_total_ns")
        .first()
    )
    if previous is not None:
        busy, elapsed = node.cpu_busy_ns - previous[0], node.cpu_total_ns - previous[1]
        # A host that rebooted restarts its counters: no rate across that.
        if elapsed > 0 and busy >= 0:
            figures["node_cpu_percent"] = min(100.0, 100.0 * busy / elapsed)
    return figures


def _previous_counters(host: Host, at: datetime) -> dict[int, Counters]:
    """Each desktop's counters from this host's previous collection, if it was recent."""
    # Beyond this gap a rate would average over a stretch in which the VM may have restarted unseen.
    max_gap = timedelta(seconds=max(60.0, 12 * conf.interval_s()))
    previous_at = (
        HostSample.objects.filter(host_id=host.pk, at__lt=at, at__gte=at - max_gap)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    if previous_at is None:
        return {}
    rows = DesktopSample.objects.filter(host_id=host.pk, at=previous_at).values_list(
        "desktop_id", "cpu_time_ns", "vcpus", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"
    )
    stamp = previous_at.timestamp()
    return {row[0]: Counters(stamp, *row[1:]) for row in rows}


def _store(host: Host, stats: list[DomainStats], at: datetime, node: NodeStats | None = None) -> Collected:
    running = [s for s in stats if s.state.is_active]
    # A domain's metadata names its desktop; domains of deleted desktops are reconcile's business.
    owners = dict(
        Desktop.objects.filter(pk__in=[s.desktop_id for s in running])
        .exclude(state=DesktopState.DELETED)
        .values_list("pk", "tenant_id")
    )
    previous = _previous_counters(host, at)
    stamp = at.timestamp()
    samples: list[DesktopSample] = []
    cores: list[float | None] = []
    for item in running:
        tenant_id = owners.get(item.desktop_id)
        if tenant_id is None:
            continue
        counters = Counters.from_stats(item, at=stamp)
        rate = rates(previous.get(item.desktop_id), counters)
        cores.append(rate.cpu_cores)
        samples.append(_sample(host, item, tenant_id, at, counters, rate))
    cpu_cores = total(cores)
    host_sample = HostSample(
        host=host,
        at=at,
        desktops=len(samples),
        cpu_cores=cpu_cores,
        cpu_percent=min(100.0, 100.0 * cpu_cores / host.cpus) if cpu_cores is not None and host.cpus else None,
        memory_used_mib=sum(s.memory_used_mib for s in samples),
        disk_read_bps=total([s.disk_read_bps for s in samples]),
        disk_write_bps=total([s.disk_write_bps for s in samples]),
        net_rx_bps=total([s.net_rx_bps for s in samples]),
        net_tx_bps=total([s.net_tx_bps for s in samples]),
        cpus=host.cpus,
        memory_mib=host.memory_mib,
        free_memory_mib=host.free_memory_mib,
        allocated_vcpus=host.allocated_vcpus,
        vcpu_capacity=host.vcpu_capacity,
        allocated_memory_mib=host.allocated_memory_mib,
        memory_capacity_mib=host.memory_capacity_mib,
        **_node_figures(host, node, at),
    )
    with transaction.atomic():
        DesktopSample.objects.bulk_create(samples)
        host_sample.save()
        pushes = sample_pushes(host, host_sample, samples)
        transaction.on_commit(lambda: live.publish(pushes), robust=True)
    return Collected(host_id=host.pk, at=at, desktops=len(samples))


def _sample(
    host: Host, item: DomainStats, tenant_id: int, at: datetime, counters: Counters, rate: Rates
) -> DesktopSample:
    return DesktopSample(
        desktop_id=item.desktop_id,
        tenant_id=tenant_id,
        host=host,
        at=at,
        cpu_percent=rate.cpu_percent,
        disk_read_bps=rate.disk_read_bps,
        disk_write_bps=rate.disk_write_bps,
        net_rx_bps=rate.net_rx_bps,
        net_tx_bps=rate.net_tx_bps,
        memory_used_mib=item.memory_used_kib / KIB_PER_MIB,
        memory_total_mib=item.memory_total_kib / KIB_PER_MIB,
        vcpus=counters.vcpus,
        cpu_time_ns=counters.cpu_time_ns,
        disk_read_bytes=counters.disk_read_bytes,
        disk_write_bytes=counters.disk_write_bytes,
        net_rx_bytes=counters.net_rx_bytes,
        net_tx_bytes=counters.net_tx_bytes,
    )


def desktop_figures(sample: DesktopSample) -> dict:
    """One desktop's reading as live messages and chart points name it."""
    r = live.rounded
    return {
        "desktop": sample.desktop_id,
        "at": live.epoch(sample.at),
        "cpu_percent": r(sample.cpu_percent),
        "memory_used_mib": r(sample.memory_used_mib, 1),
        "memory_total_mib": r(sample.memory_total_mib, 1),
        "vcpus": sample.vcpus,
        "disk_read_bps": r(sample.disk_read_bps, 0),
        "disk_write_bps": r(sample.disk_write_bps, 0),
        "net_rx_bps": r(sample.net_rx_bps, 0),
        "net_tx_bps": r(sample.net_tx_bps, 0),
    }


def host_figures(host: Host, sample: HostSample) -> dict:
    """One host's totals and allocation as live messages name them."""
    r = live.rounded
    return {
        "host": host.pk,
        "name": host.name,
        "at": live.epoch(sample.at),
        "desktops": sample.desktops,
        "cpu_percent": r(sample.cpu_percent),
        "cpu_cores": r(sample.cpu_cores),
        "memory_used_mib": r(sample.memory_used_mib, 1),
        "disk_read_bps": r(sample.disk_read_bps, 0),
        "disk_write_bps": r(sample.disk_write_bps, 0),
        "net_rx_bps": r(sample.net_rx_bps, 0),
        "net_tx_bps": r(sample.net_tx_bps, 0),
        "cpus": sample.cpus,
        "memory_mib": sample.memory_mib,
        "free_memory_mib": sample.free_memory_mib,
        "allocated_vcpus": sample.allocated_vcpus,
        "vcpu_capacity": sample.vcpu_capacity,
        "allocated_memory_mib": sample.allocated_memory_mib,
        "memory_capacity_mib": sample.memory_capacity_mib,
        "node_cpu_percent": r(sample.node_cpu_percent),
        "node_memory_used_mib": r(sample.node_memory_used_mib, 0),
        "node_disk_total_bytes": sample.node_disk_total_bytes,
        "node_disk_used_bytes": sample.node_disk_used_bytes,
    }


def sample_pushes(host: Host, host_sample: HostSample, samples: list[DesktopSample]) -> list[live.Push]:
    """One message per desktop, one per tenant present on the host, one for operators."""
    pushes: list[live.Push] = []
    by_tenant: dict[int, list[dict]] = defaultdict(list)
    for sample in samples:
        figures = desktop_figures(sample)
        pushes.append(
            live.push(
                groups.desktop_group(sample.desktop_id),
                groups.desktop_topic(sample.desktop_id),
                {"type": "metrics", **figures},
            )
        )
        # A tenant dashboard sums CPU and RAM in use; the rest stays on the desktop's own topic.
        by_tenant[sample.tenant_id].append(
            {k: figures[k] for k in ("desktop", "cpu_percent", "vcpus", "memory_used_mib", "memory_total_mib")}
        )
    at = live.epoch(host_sample.at)
    for tenant_id, desktops in by_tenant.items():
        pushes.append(
            live.push(
                groups.tenant_group(tenant_id), groups.TENANT, {"type": "metrics", "at": at, "desktops": desktops}
            )
        )
    pushes.append(
        live.push(groups.operators_group(), groups.OPERATORS, {"type": "host", **host_figures(host, host_sample)})
    )
    return pushes


def hosts_to_collect() -> list[int]:
    """Hosts worth asking: enabled and not known to be down."""
    return list(Host.objects.filter(enabled=True).exclude(state=HostState.DOWN).values_list("pk", flat=True))
