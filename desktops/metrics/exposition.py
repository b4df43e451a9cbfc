"""The figures in Prometheus' text exposition format (version 0.0.4), from the newest samples."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count
from django.utils import timezone

from desktops.choices import IN_FLIGHT_STATUSES
from desktops.metrics import queries
from desktops.models import Desktop, Operation
from hosts.choices import HostState
from hosts.models import Host
from tenants.models import Tenant

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MIB = 1024 * 1024


@dataclass
class Family:
    """One metric family: its help, type and samples (labels, value)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, labels: dict[str, str], value: float | None) -> None:
        if value is not None:
            self.samples.append((labels, float(value)))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def render(families: Iterable[Family]) -> str:
    """The exposition text: HELP and TYPE once per family, then its samples."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            lines.append(
                f"{family.name}{{{label_text}}} {_number(value)}" if labels else f"{family.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


def _desktop_families(host_names: dict[int, str], now: datetime) -> list[Family]:
    host_samples = queries.latest_host_samples(now=now)
    samples = queries.latest_desktop_samples(host_samples)
    tenant_slugs = dict(Tenant.objects.filter(pk__in={s.tenant_id for s in samples}).values_list("pk", "slug"))
    f = {
        "cpu": Family("quetzal_desktop_cpu_percent", "gauge", "Share of the desktop's vCPUs in use, 0-100."),
        "cpu_s": Family("quetzal_desktop_cpu_seconds_total", "counter", "CPU time the desktop's VM has used."),
        "vcpus": Family("quetzal_desktop_vcpus", "gauge", "vCPUs of the desktop's VM."),
        "mem": Family("quetzal_desktop_memory_used_bytes", "gauge", "Memory the guest uses."),
        "mem_total": Family("quetzal_desktop_memory_bytes", "gauge", "Memory the guest has."),
        "rd": Family("quetzal_desktop_disk_read_bytes_total", "counter", "Bytes read from the desktop's disks."),
        "wr": Family("quetzal_desktop_disk_written_bytes_total", "counter", "Bytes written to the desktop's disks."),
        "rx": Family("quetzal_desktop_network_receive_bytes_total", "counter", "Bytes the desktop received."),
        "tx": Family("quetzal_desktop_network_transmit_bytes_total", "counter", "Bytes the desktop sent."),
    }
    for s in samples:
        labels = {
            "desktop": str(s.desktop_id),
            "tenant": tenant_slugs.get(s.tenant_id, ""),
            "host": host_names.get(s.host_id, ""),
        }
        f["cpu"].add(labels, s.cpu_percent)
        f["cpu_s"].add(labels, s.cpu_time_ns / 1e9)
        f["vcpus"].add(labels, s.vcpus)
        f["mem"].add(labels, s.memory_used_mib * MIB)
        f["mem_total"].add(labels, s.memory_total_mib * MIB)
        f["rd"].add(labels, s.disk_read_bytes)
        f["wr"].add(labels, s.disk_write_bytes)
        f["rx"].add(labels, s.net_rx_bytes)
        f["tx"].add(labels, s.net_tx_bytes)
    return [*f.values(), *_host_sample_families(host_samples, host_names)]


def _host_sample_families(host_samples, host_names: dict[int, str]) -> list[Family]:
    f = {
        "desktops": Family("quetzal_host_desktops_running", "gauge", "Desktops with a running VM on the host."),
        "cpu": Family("quetzal_host_cpu_percent", "gauge", "Share of the host's CPUs the desktops use, 0-100."),
        "cores": Family("quetzal_host_cpu_cores_used", "gauge", "CPUs' worth of time the desktops use."),
        "mem": Family("quetzal_host_guest_memory_used_bytes", "gauge", "Memory the host's guests use."),
        "rd": Family("quetzal_host_disk_read_bytes_per_second", "gauge", "Disk reads of the host's desktops."),
        "wr": Family("quetzal_host_disk_write_bytes_per_second", "gauge", "Disk writes of the host's desktops."),
        "rx": Family("quetzal_host_network_receive_bytes_per_second", "gauge", "Network received by the desktops."),
        "tx": Family("quetzal_host_network_transmit_bytes_per_second", "gauge", "Network sent by the desktops."),
        "at": Family("quetzal_host_last_sample_timestamp_seconds", "gauge", "When the host was last collected."),
    }
    for s in host_samples:
        labels = {"host": host_names.get(s.host_id, "")}
        f["desktops"].add(labels, s.desktops)
        f["cpu"].add(labels, s.cpu_percent)
        f["cores"].add(labels, s.cpu_cores)
        f["mem"].add(labels, s.memory_used_mib * MIB)
        f["rd"].add(labels, s.disk_read_bps)
        f["wr"].add(labels, s.disk_write_bps)
        f["rx"].add(labels, s.net_rx_bps)
        f["tx"].add(labels, s.net_tx_bps)
        f["at"].add(labels, s.at.timestamp())
    return list(f.values())


def _host_families(hosts: list[Host]) -> list[Family]:
    f = {
        "up": Family("quetzal_host_up", "gauge", "1 when the host's heartbeat answers."),
        "accepts": Family("quetzal_host_accepts_desktops", "gauge", "1 when enabled and not in maintenance or drain."),
        "cpus": Family("quetzal_host_cpus", "gauge", "CPUs of the host."),
        "vcap": Family("quetzal_host_vcpu_capacity", "gauge", "vCPUs placeable under the overcommit ratio."),
        "valloc": Family("quetzal_host_vcpus_allocated", "gauge", "vCPUs placed desktops hold."),
        "mem": Family("quetzal_host_memory_bytes", "gauge", "Memory of the host."),
        "free": Family("quetzal_host_memory_free_bytes", "gauge", "Memory the host reported free."),
        "mcap": Family("quetzal_host_memory_capacity_bytes", "gauge", "Memory placeable under the RAM ratio."),
        "malloc": Family("quetzal_host_memory_allocated_bytes", "gauge", "Memory placed desktops hold."),
    }
    for host in hosts:
        labels = {"host": host.name}
        f["up"].add(labels, 1 if host.state == HostState.UP else 0)
        f["accepts"].add(labels, 1 if host.accepts_desktops else 0)
        f["cpus"].add(labels, host.cpus)
        f["vcap"].add(labels, host.vcpu_capacity)
        f["valloc"].add(labels, host.allocated_vcpus)
        f["mem"].add(labels, host.memory_mib * MIB)
        f["free"].add(labels, host.free_memory_mib * MIB)
        f["mcap"].add(labels, host.memory_capacity_mib * MIB)
        f["malloc"].add(labels, host.allocated_memory_mib * MIB)
    return list(f.values())


def _fleet_families() -> list[Family]:
    desktops = Family("quetzal_desktops", "gauge", "Desktops by state (deleted ones excluded).")
    for row in Desktop.objects.alive().values("state").annotate(n=Count("id")).order_by("state"):
        desktops.add({"state": row["state"]}, row["n"])
    operations = Family("quetzal_operations_in_flight", "gauge", "Operations queued or running, by kind.")
    for row in (
        Operation.objects.filter(status__in=IN_FLIGHT_STATUSES).values("kind").annotate(n=Count("id")).order_by("kind")
    ):
        operations.add({"kind": row["kind"]}, row["n"])
    return [desktops, operations]


def exposition(*, now: datetime | None = None) -> str:
    """Everything operators scrape: hosts, their newest samples, each running desktop, the fleet."""
    now = now or timezone.now()
    hosts = list(Host.objects.order_by("name"))
    host_names = {h.pk: h.name for h in hosts}
    return render([*_host_families(hosts), *_desktop_families(host_names, now), *_fleet_families()])
