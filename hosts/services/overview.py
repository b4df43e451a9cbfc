"""The operators' view of the fleet: each host's health, capacity in use and desktops, and the totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q
from django.utils import timezone

from hosts import conf
from hosts.choices import HostState
from hosts.models import Host


def _percent(used: int, capacity: int) -> int:
    return min(100, round(100 * used / capacity)) if capacity > 0 else 0


@dataclass(frozen=True)
class HostRow:
    host: Host
    desktops: int
    gpus: int
    gpus_busy: int
    now: datetime

    @property
    def heartbeat_age_s(self) -> int | None:
        if self.host.last_heartbeat_at is None:
            return None
        return max(0, int((self.now - self.host.last_heartbeat_at).total_seconds()))

    @property
    def status(self) -> str:
        """One word for the badge: down, stale, disabled, maintenance, draining or up."""
        host = self.host
        age = self.heartbeat_age_s
        if host.state == HostState.DOWN:
            return "down"
        if host.state != HostState.UP or age is None or age > conf.host_down_after_s():
            return "stale"
        if not host.enabled:
            return "disabled"
        if host.maintenance:
            return "maintenance"
        if host.drain:
            return "draining"
        return "up"

    @property
    def vcpu_percent(self) -> int:
        return _percent(self.host.allocated_vcpus, self.host.vcpu_capacity)

    @property
    def memory_percent(self) -> int:
        return _percent(self.host.allocated_memory_mib, self.host.memory_capacity_mib)


@dataclass(frozen=True)
class Fleet:
    rows: list[HostRow]
    now: datetime = field(default_factory=timezone.now)

    def _count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def up(self) -> int:
        return self._count("up")

    @property
    def unavailable(self) -> int:
        """Hosts that take no new desktops: down, stale, disabled, in maintenance or draining."""
        return len(self.rows) - self.up

    @property
    def desktops(self) -> int:
        return sum(row.desktops for row in self.rows)

    @property
    def vcpus(self) -> tuple[int, int]:
        """(allocated, capacity) over hosts that are up."""
        rows = [row for row in self.rows if row.status == "up"]
        return sum(r.host.allocated_vcpus for r in rows), sum(r.host.vcpu_capacity for r in rows)

    @property
    def memory_mib(self) -> tuple[int, int]:
        rows = [row for row in self.rows if row.status == "up"]
        return sum(r.host.allocated_memory_mib for r in rows), sum(r.host.memory_capacity_mib for r in rows)

    @property
    def vcpu_percent(self) -> int:
        return _percent(*self.vcpus)

    @property
    def memory_percent(self) -> int:
        return _percent(*self.memory_mib)


def fleet(*, now: datetime | None = None) -> Fleet:
    """Every host with its desktops (allocations) and GPUs, in one query."""
    now = now or timezone.now()
    hosts = Host.objects.annotate(
        desktop_count=Count("allocations", distinct=True),
        gpu_count=Count("devices", filter=Q(devices__present=True), distinct=True),
        gpus_busy_count=Count(
            "devices",
            filter=Q(devices__present=True)
            & (Q(devices__assigned_desktop_id__isnull=False) | Q(devices__mdev_instances_used__gt=0)),
            distinct=True,
        ),
    ).order_by("name")
    rows = [HostRow(h, h.desktop_count, h.gpu_count, h.gpus_busy_count, now) for h in hosts]
    return Fleet(rows=rows, now=now)
