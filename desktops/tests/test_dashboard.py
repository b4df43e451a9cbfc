"""The tenant admin dashboard's figures: people, desktops, idle deadlines, quota use, room, hours."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.utils import timezone

from desktops.choices import DesktopKind, DesktopState, OperationKind, OperationStatus
from desktops.console.models import ConsoleSession
from desktops.services import dashboard, hours
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory, OperationFactory
from desktops.tests.page_world import populate
from tenants.choices import IdleAction


def test_it_counts_people_desktops_and_warm_pool_desktops(alice, bob, image):
    # Given alice's world (member: one running, one stopped; admin: one running with a console; one warm)
    populate(alice, image)
    populate(bob, image)
    ConsoleSession.objects.create(tenant=alice.tenant, desktop=alice.admin.desktops.get(), user=alice.admin)
    # When the dashboard is built for alice
    figures = dashboard.build(alice.tenant)
    # Then only alice's rows count
    assert (figures.members, figures.active_people, figures.connected_people) == (3, 2, 1)
    assert (figures.running, figures.stopped, figures.warm, figures.busy) == (3, 1, 1, 0)


def test_it_sums_running_cpu_and_ram_against_the_quotas(alice, image):
    world = populate(alice, image)
    alice.tenant.quota_vcpus, alice.tenant.quota_ram_mib = 8, 0
    # Three running Ubuntu desktops (2 vCPU, 4 GiB each); the stopped Windows one does not count
    figures = dashboard.build(alice.tenant)
    assert (figures.vcpus.used, figures.vcpus.quota, figures.vcpus.percent, figures.vcpus.level) == (6, 8, 75, "warn")
    assert (figures.memory_mib.used, figures.memory_mib.percent) == (3 * 4096, None)
    assert world["stopped"].state == DesktopState.STOPPED


def test_it_says_when_each_idle_desktop_will_be_stopped(alice, image):
    # Given a 60-minute idle timeout and a desktop last used 20 minutes ago, another in use
    world = populate(alice, image)
    now = timezone.now()
    figures = dashboard.build(alice.tenant, now=now)
    # Then the member's desktop is idle, stopping in 39-40 min; the one with a console is not idle
    labels = dict(figures.idle_labels)
    assert labels[world["mine"]] in ("idle, stopping in 39 min", "idle, stopping in 40 min")
    assert all(d.consoles_open == 0 for d in labels)


def test_it_names_the_idle_action_the_policy_will_take(alice, image):
    populate(alice, image)
    alice.tenant.idle_action = IdleAction.HIBERNATE
    alice.tenant.save()
    member_desktop = alice.member.desktops.filter(state=DesktopState.RUNNING).get()
    idle = {item.desktop.pk: item for item in dashboard.idle_desktops(alice.tenant)}
    assert idle[member_desktop.pk].label(timezone.now()).startswith("idle, hibernating in ")
    alice.tenant.idle_timeout_minutes = 0
    alice.tenant.save()
    idle = {item.desktop.pk: item for item in dashboard.idle_desktops(alice.tenant)}
    assert idle[member_desktop.pk].label(timezone.now()) == "idle"


def test_it_counts_how_many_more_of_each_template_fit_capped_by_the_quota(alice, host, template):
    # Given a 16-CPU host (64 vCPUs at ratio 4, 64 GiB) with the image, and a 2 vCPU / 2 GiB template
    rooms = {room.template.pk: room for room in dashboard.build(alice.tenant).rooms}
    # Then the host has room for 32 (RAM-bound) and no quota applies
    assert (rooms[template.pk].hosts_fit, rooms[template.pk].quota_fit, rooms[template.pk].fits) == (32, None, 32)
    # When a quota of 10 vCPUs is set and 3 desktops (6 vCPUs) run
    alice.tenant.quota_vcpus = 10
    for _ in range(3):
        DesktopFactory(world=alice, template=template, lived_in=True)
    room = next(r for r in dashboard.build(alice.tenant).rooms if r.template.pk == template.pk)
    # Then two more fit, and the quota is what limits
    assert (room.fits, room.limited_by) == (2, "quota")


def test_it_says_no_gpu_when_no_host_has_the_gpu(alice, host, image):
    gpu = DesktopTemplateFactory(
        name="GPU", image=image, gpu_kind="passthrough", visibility="tenant", tenant=alice.tenant
    )
    room = next(r for r in dashboard.build(alice.tenant).rooms if r.template.pk == gpu.pk)
    assert (room.fits, room.limited_by) == (0, "gpu")


def test_it_spreads_runs_over_the_days_they_span():
    zone = timezone.get_current_timezone()
    start = datetime(2026, 3, 1, 22, 0, tzinfo=zone)
    result = hours.spread_over_days(
        [(start, start + timedelta(hours=5)), (start + timedelta(days=1), start + timedelta(days=1, hours=1))],
        first=date(2026, 3, 1),
        last=date(2026, 3, 3),
    )
    assert [(d.day.day, d.hours) for d in result] == [(1, 2.0), (2, 4.0), (3, 0.0)]


def test_it_rebuilds_desktop_hours_from_operations(alice, image):
    # Given runs of 3.5 h and 6 h two days ago and yesterday, and a desktop running for 2 h now
    world = populate(alice, image)
    now = timezone.now()
    OperationFactory(
        desktop=world["mine"],
        kind=OperationKind.START,
        status=OperationStatus.SUCCEEDED,
        finished_at=now - timedelta(hours=2),
    )
    # When the hours are computed over 30 days
    days = hours.desktop_hours_per_day(tenant=alice.tenant, days=30, now=now)
    # Then every run counts once: 3.5 + 6 + 4 (Windows) + 7.5 (admin's) + the 2 h still running
    assert len(days) == 30
    assert round(sum(d.hours for d in days), 1) == 23.0


def test_it_ends_a_run_reconcile_stopped_at_the_desktops_last_state_change(alice, template):
    # Given a start, then the desktop found stopped without an operation (the VM died)
    now = timezone.now()
    desktop = DesktopFactory(
        world=alice,
        template=template,
        lived_in=True,
        state=DesktopState.STOPPED,
        state_changed_at=now - timedelta(hours=1),
    )
    OperationFactory(
        desktop=desktop,
        kind=OperationKind.START,
        status=OperationStatus.SUCCEEDED,
        finished_at=now - timedelta(hours=3),
    )
    runs = hours.intervals_from_operations(tenant=alice.tenant, since=now - timedelta(days=1), now=now)
    assert [round((end - start).total_seconds() / 3600, 2) for start, end in runs] == [2.0]


def test_it_ignores_warm_pool_desktops_that_were_hibernated_after_boot(alice, template):
    now = timezone.now()
    desktop = DesktopFactory(
        world=alice, template=template, lived_in=True, user=None, kind=DesktopKind.POOLED, state=DesktopState.HIBERNATED
    )
    OperationFactory(
        desktop=desktop,
        kind=OperationKind.CREATE,
        status=OperationStatus.SUCCEEDED,
        params={"start": True, "hibernate_after": True},
        finished_at=now - timedelta(hours=3),
    )
    assert hours.intervals_from_operations(tenant=alice.tenant, since=now - timedelta(days=1), now=now) == []


def test_it_gives_the_chart_one_point_per_day():
    zone = timezone.get_current_timezone()
    chart = dashboard.hours_chart([hours.DayHours(date(2026, 3, 1), 1.5), hours.DayHours(date(2026, 3, 2), 0.0)])
    assert chart == {
        "x": [int(datetime(2026, 3, 1, tzinfo=zone).timestamp()), int(datetime(2026, 3, 2, tzinfo=zone).timestamp())],
        "y": [1.5, 0.0],
    }


def test_it_shows_the_tenants_home_storage_against_its_quota(alice, bob):
    from desktops.tests.factories import HomeDiskFactory

    # Given two homes of 10 GiB in alice's tenant (quota 40 GiB) with 3 MiB written, and one in bob's
    alice.tenant.quota_home_gib = 40
    HomeDiskFactory(world=alice, size_gib=10, used_bytes=1024**2)
    HomeDiskFactory(world=alice, user=alice.admin, size_gib=10, used_bytes=2 * 1024**2)
    HomeDiskFactory(world=bob, size_gib=10, used_bytes=5 * 1024**2)
    # When alice's dashboard is built
    figures = dashboard.build(alice.tenant)
    # Then only alice's homes count
    assert (figures.homes.used, figures.homes.quota, figures.homes.percent) == (20, 40, 50)
    assert (figures.home_count, figures.home_used_bytes) == (2, 3 * 1024**2)
