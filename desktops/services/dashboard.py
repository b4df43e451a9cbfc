"""The tenant admin dashboard's figures: people, desktops, idle deadlines, quota use, room, hours."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from desktops.choices import ACTIVE_STATES, AT_REST_STATES, TRANSITIONAL_STATES, DesktopKind, DesktopState
from desktops.console.models import ConsoleSession
from desktops.models import Desktop, DesktopTemplate, HomeDisk, Pool
from desktops.services import quotas
from desktops.services.hours import DayHours, day_start, desktop_hours_per_day
from desktops.services.idle import idle_action, idle_deadline
from hosts.scheduling import fits_count
from tenants.choices import IdleAction
from tenants.models import Membership, Tenant

# An open console whose proxy has not reported for this long is not counted as connected.
CONNECTED_WITHIN = timedelta(minutes=3)

_IDLE_VERBS: dict[str, str] = {
    IdleAction.STOP: "stopping",
    IdleAction.HIBERNATE: "hibernating",
    IdleAction.RECYCLE: "recycling",
}


@dataclass(frozen=True)
class Usage:
    """Something in use against a quota (0: no quota)."""

    used: int
    quota: int

    @property
    def percent(self) -> int | None:
        return min(100, round(100 * self.used / self.quota)) if self.quota else None

    @property
    def level(self) -> str:
        """ok / warn / full, for colouring a bar."""
        percent = self.percent or 0
        return "full" if percent >= 90 else "warn" if percent >= 70 else "ok"


@dataclass(frozen=True)
class IdleDesktop:
    desktop: Desktop
    deadline: datetime | None
    verb: str

    def minutes_left(self, now: datetime) -> int | None:
        if self.deadline is None:
            return None
        return max(0, int((self.deadline - now).total_seconds() // 60))

    def label(self, now: datetime) -> str:
        """'idle, stopping in 12 min', or just 'idle' when no idle policy applies."""
        minutes = self.minutes_left(now)
        if minutes is None or not self.verb:
            return "idle"
        return f"idle, {self.verb} in {minutes} min" if minutes else f"idle, {self.verb} now"


@dataclass(frozen=True)
class TemplateRoom:
    """How many more desktops of a template can start: what the hosts have room for, capped by quotas."""

    template: DesktopTemplate
    hosts_fit: int
    quota_fit: int | None

    @property
    def fits(self) -> int:
        return self.hosts_fit if self.quota_fit is None else min(self.hosts_fit, self.quota_fit)

    @property
    def limited_by(self) -> str:
        """What stops more from starting: quota, gpu (no free GPU of that kind) or hosts."""
        if self.quota_fit is not None and self.quota_fit < self.hosts_fit:
            return "quota"
        if self.hosts_fit == 0 and self.template.gpu_kind != "none":
            return "gpu"
        return "hosts"


@dataclass(frozen=True)
class Dashboard:
    members: int
    active_people: int
    connected_people: int
    running: int
    busy: int
    stopped: int
    warm: int
    errors: int
    idle: list[IdleDesktop]
    vcpus: Usage
    memory_mib: Usage
    desktops: Usage
    rooms: list[TemplateRoom]
    hours: list[DayHours] = field(default_factory=list)
    # Home folders: their sizes (GiB promised) against the tenant's home quota, and what is written in them.
    homes: Usage = field(default_factory=lambda: Usage(0, 0))
    home_count: int = 0
    home_used_bytes: int = 0
    now: datetime = field(default_factory=timezone.now)

    @property
    def idle_labels(self) -> list[tuple[Desktop, str]]:
        return [(item.desktop, item.label(self.now)) for item in self.idle]

    @property
    def hours_total(self) -> float:
        return round(sum(day.hours for day in self.hours), 1)


def _quota_fit(tenant: Tenant, template: DesktopTemplate, vcpus: Usage, memory: Usage, desktops: Usage) -> int | None:
    limits = []
    if tenant.quota_vcpus:
        limits.append(max(0, tenant.quota_vcpus - vcpus.used) // max(1, template.vcpus))
    if tenant.quota_ram_mib:
        limits.append(max(0, tenant.quota_ram_mib - memory.used) // max(1, template.memory_mib))
    if tenant.quota_desktops:
        limits.append(max(0, tenant.quota_desktops - desktops.used))
    return min(limits) if limits else None


def rooms(tenant: Tenant, *, vcpus: Usage, memory: Usage, desktops: Usage) -> list[TemplateRoom]:
    """Per launchable template: how many more fit on the hosts, and how many the quotas allow."""
    result = []
    for template in DesktopTemplate.objects.launchable_by(tenant).order_by("name"):
        hosts_fit = fits_count(
            vcpus=template.vcpus,
            memory_mib=template.memory_mib,
            gpu_profile=template.gpu_profile,
            image_id=template.image_id,
        )
        result.append(TemplateRoom(template, hosts_fit, _quota_fit(tenant, template, vcpus, memory, desktops)))
    return result


def idle_desktops(tenant: Tenant) -> list[IdleDesktop]:
    """Running desktops someone holds with no console open, soonest idle action first."""
    running = (
        Desktop.objects.for_tenant(tenant)
        .filter(state=DesktopState.RUNNING, consoles_open=0)
        .exclude(kind=DesktopKind.POOLED, user__isnull=True)
        .select_related("tenant", "pool", "user", "template")
    )
    items = [IdleDesktop(d, idle_deadline(d), _IDLE_VERBS.get(idle_action(d), "")) for d in running]
    far = timezone.now() + timedelta(days=3650)
    return sorted(items, key=lambda item: item.deadline or far)


def build(tenant: Tenant, *, now: datetime | None = None, hours_days: int = 30) -> Dashboard:
    """Every figure of the dashboard, in a handful of queries plus one fit count per template."""
    now = now or timezone.now()
    desktops = Desktop.objects.for_tenant(tenant).alive()
    states = dict(desktops.order_by().values("state").annotate(n=Count("id")).values_list("state", "n"))
    active = desktops.filter(state__in=ACTIVE_STATES)
    # Counted as the quota checks count them, so the room shown is the room a request gets.
    used = quotas.running_desktops(tenant).aggregate(vcpus=Sum("vcpus"), memory=Sum("memory_mib"))
    vcpus = Usage(used["vcpus"] or 0, tenant.quota_vcpus)
    memory = Usage(used["memory"] or 0, tenant.quota_ram_mib)
    counted = Usage(quotas.counted_desktops(tenant).count(), tenant.quota_desktops)
    warm = desktops.filter(kind=DesktopKind.POOLED, user__isnull=True, state__in=Pool.WarmState.values)
    connected = (
        ConsoleSession.objects.for_tenant(tenant)
        .filter(ended_at__isnull=True, last_seen_at__gte=now - CONNECTED_WITHIN)
        .values("user")
        .distinct()
        .count()
    )
    home_figures = HomeDisk.objects.for_tenant(tenant).aggregate(
        n=Count("id"), size=Sum("size_gib"), used=Sum("used_bytes")
    )
    return Dashboard(
        homes=Usage(home_figures["size"] or 0, tenant.quota_home_gib),
        home_count=home_figures["n"] or 0,
        home_used_bytes=home_figures["used"] or 0,
        members=Membership.objects.for_tenant(tenant).count(),
        active_people=active.filter(user__isnull=False).values("user").distinct().count(),
        connected_people=connected,
        running=states.get(DesktopState.RUNNING, 0),
        busy=sum(states.get(state, 0) for state in TRANSITIONAL_STATES),
        stopped=sum(states.get(state, 0) for state in AT_REST_STATES),
        warm=warm.count(),
        errors=states.get(DesktopState.ERROR, 0),
        idle=idle_desktops(tenant),
        vcpus=vcpus,
        memory_mib=memory,
        desktops=counted,
        rooms=rooms(tenant, vcpus=vcpus, memory=memory, desktops=counted),
        hours=desktop_hours_per_day(tenant=tenant, days=hours_days, now=now),
        now=now,
    )


def hours_chart(hours: list[DayHours]) -> dict:
    """uPlot's columns: x as Unix seconds (day starts), y as hours."""
    return {
        "x": [int(day_start(day.day).timestamp()) for day in hours],
        "y": [day.hours for day in hours],
    }
