"""Personal desktops warmed before their owner usually arrives: the habit rule, guards, quotas, the idle policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from desktops.choices import DesktopState, OperationKind, OperationStatus
from desktops.models import Desktop, Operation
from desktops.services import idle, warm_personal
from desktops.services.requests import request_action, request_stop
from desktops.tests.factories import DesktopFactory, OperationFactory
from tenants.events import AuditAction
from tenants.models import AuditEvent, Tenant
from tests.fixtures import api_client, login_client

# 2026-03-02 is a Monday (the fourth one of the tests); Paris is UTC+1 then.
MONDAY_UTC = datetime(2026, 3, 2, tzinfo=UTC)


def paris(hour: int, minute: int = 0, day: int = 0) -> datetime:
    """A Paris wall-clock time on the fourth Monday (or `day` days later), as the UTC instant."""
    return MONDAY_UTC + timedelta(days=day, hours=hour - 1, minutes=minute)


def _stopped_desktop(world, template, work) -> Desktop:
    """The world member's personal desktop, made and booted on the test host, then stopped by them."""
    client = api_client(world.member, world.tenant)
    with work():
        desktop_id = client.post("/api/desktop/start", {"template": template.pk}, format="json").json()["desktop"]["id"]
    desktop = Desktop.objects.get(pk=desktop_id)
    with work():
        request_stop(desktop=desktop, actor=world.member)
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.STOPPED
    return desktop


def _started_by_owner(desktop: Desktop, at: datetime) -> None:
    """History: the owner started the desktop at `at`."""
    OperationFactory(
        desktop=desktop, actor=desktop.user, kind=OperationKind.START, status=OperationStatus.SUCCEEDED, queued_at=at
    )


def _connected_by_owner(desktop: Desktop, at: datetime) -> None:
    """History: the owner opened the desktop's console at `at` (a warmed desktop is connected to, not started)."""
    AuditEvent.objects.create(
        tenant=desktop.tenant,
        actor=desktop.user,
        action=AuditAction.CONSOLE_OPEN,
        target_type="desktops.desktop",
        target_id=str(desktop.pk),
        target_repr=desktop.name,
        created_at=at,
    )


def _with_policy(tenant: Tenant, *, on: bool = True, lead: int = 15) -> None:
    tenant.time_zone = "Europe/Paris"
    tenant.warm_personal_desktops, tenant.warm_personal_lead_minutes = on, lead
    tenant.save()


def _mondays_at_nine(desktop: Desktop) -> None:
    """An owner who came on the three Mondays before, about 9:00 (8:58, 9:03, then 9:05 to a warmed desktop)."""
    _started_by_owner(desktop, paris(8, 58, day=-21))
    _connected_by_owner(desktop, paris(8, 59, day=-21))  # the console right after the start: the same arrival
    _started_by_owner(desktop, paris(9, 3, day=-14))
    _connected_by_owner(desktop, paris(9, 5, day=-7))


def _warm_starts(desktop: Desktop):
    return Operation.objects.filter(desktop=desktop, kind=OperationKind.START, actor__isnull=True)


@pytest.fixture
def habit(alice, host, template, work) -> Desktop:
    """alice's member's stopped desktop, with their Monday 9:00 habit, in a tenant that warms with 15 minutes lead."""
    _with_policy(alice.tenant)
    desktop = _stopped_desktop(alice, template, work)
    _mondays_at_nine(desktop)
    return desktop


def test_it_starts_the_desktop_a_lead_time_before_its_owner_usually_arrives(habit, work):
    # Given an owner who came about 9:00 on each of the last three Mondays
    # When the beat runs at 8:44 on the fourth Monday nothing is due yet (their 9:00 is beyond the lead time)
    with work():
        assert warm_personal.warm_all(now=paris(8, 44)) == 0
    assert not _warm_starts(habit).exists()
    # Then at 8:45 the desktop is started, by nobody, with the reason on record
    with work():
        assert warm_personal.warm_all(now=paris(8, 45)) == 1
    habit.refresh_from_db()
    assert habit.state == DesktopState.RUNNING
    [start] = _warm_starts(habit)
    assert start.params == {"reason": warm_personal.REASON} and start.status == OperationStatus.SUCCEEDED
    event = AuditEvent.objects.get(action=AuditAction.DESKTOP_START, target_id=str(habit.pk), actor__isnull=True)
    assert event.data == {"reason": "Warmed before its owner usually arrives"} and event.tenant == habit.tenant
    # And it stays warm for them until their arrival quarter hour (9:00-9:15) and the grace after it
    assert habit.warm_until == paris(9, 30)


def test_it_warms_nothing_where_the_policy_is_off(alice, bob, host, template, work):
    # Given the same habit in two tenants, only alice's with the policy on
    _with_policy(alice.tenant)
    _with_policy(bob.tenant, on=False)
    alices, bobs = _stopped_desktop(alice, template, work), _stopped_desktop(bob, template, work)
    _mondays_at_nine(alices)
    _mondays_at_nine(bobs)
    # When the beat runs at 8:45, only alice's desktop is started
    with work():
        assert warm_personal.warm_all(now=paris(8, 45)) == 1
    assert Desktop.objects.get(pk=alices.pk).state == DesktopState.RUNNING
    assert Desktop.objects.get(pk=bobs.pk).state == DesktopState.STOPPED and not _warm_starts(bobs).exists()


def test_it_leaves_a_running_desktop_and_a_busy_one_alone(habit, alice, work):
    # Given the owner started it themselves at 8:40
    with work():
        request_action(desktop=habit, kind=OperationKind.START, actor=alice.member)
    assert Desktop.objects.get(pk=habit.pk).state == DesktopState.RUNNING
    # Then the beat at 8:45 has nothing to start
    assert warm_personal.warm_all(now=paris(8, 45)) == 0
    # And a stopped one with an operation in flight is not started over it
    Desktop.objects.filter(pk=habit.pk).update(state=DesktopState.STOPPED)
    OperationFactory(desktop=habit, actor=alice.member, kind=OperationKind.SNAPSHOT, params={"snapshot": "s1"})
    assert warm_personal.warm_all(now=paris(8, 45)) == 0
    assert not _warm_starts(habit).exists()


def test_it_decides_again_under_the_lock_on_what_a_pass_read_before(habit, alice, work):
    # Given a pass that read the desktop as stopped and due, and the owner starting it before that pass locks it
    with work():
        request_action(desktop=habit, kind=OperationKind.START, actor=alice.member)
    until = paris(9, 30)
    # Then the stale read starts nothing: the lock finds it running
    assert not warm_personal.warm_one(
        tenant=alice.tenant, desktop_id=habit.pk, owner_id=alice.member.pk, until=until, now=paris(8, 45)
    )
    # And a desktop handed to someone else meanwhile is not started for the person read before
    with work():
        request_stop(desktop=Desktop.objects.get(pk=habit.pk), actor=alice.member)
    Desktop.objects.filter(pk=habit.pk).update(user=alice.admin)
    assert not warm_personal.warm_one(
        tenant=alice.tenant, desktop_id=habit.pk, owner_id=alice.member.pk, until=until, now=paris(8, 45)
    )
    assert not _warm_starts(habit).exists() and Desktop.objects.get(pk=habit.pk).warm_until is None


def test_it_warms_once_per_arrival(habit, alice, work):
    with work():
        assert warm_personal.warm_all(now=paris(8, 45)) == 1
    # Given the owner came early and stopped it at 8:50
    with work():
        request_stop(desktop=Desktop.objects.get(pk=habit.pk), actor=alice.member)
    assert Desktop.objects.get(pk=habit.pk).state == DesktopState.STOPPED
    # When the beat runs again for the same arrival, it is not started a second time
    with work():
        assert warm_personal.warm_all(now=paris(8, 50)) == 0
        assert warm_personal.warm_all(now=paris(9, 0)) == 0
    assert _warm_starts(habit).count() == 1
    assert Desktop.objects.get(pk=habit.pk).state == DesktopState.STOPPED


def test_it_waits_for_a_habit_one_arrival_is_not_one(alice, host, template, work):
    # Given an owner who came only last Monday at 9:00
    _with_policy(alice.tenant)
    once = _stopped_desktop(alice, template, work)
    _started_by_owner(once, paris(9, 0, day=-7))
    # (a start by an admin is not the owner arriving)
    OperationFactory(
        desktop=once, actor=alice.admin, kind=OperationKind.START, status="succeeded", queued_at=paris(9, 0, day=-14)
    )
    # When the beat runs at 8:45, nothing is started
    assert warm_personal.warm_all(now=paris(8, 45)) == 0
    assert Desktop.objects.get(pk=once.pk).state == DesktopState.STOPPED
    # And the week after a second Monday the habit is there
    _started_by_owner(once, paris(9, 1))
    with work():
        assert warm_personal.warm_all(now=paris(8, 45, day=7)) == 1


def test_it_goes_through_the_owners_running_limit(habit, alice, template, work):
    # Given an owner already at their limit of running desktops
    alice.tenant.max_running_per_user = 1
    alice.tenant.save()
    other = DesktopFactory(world=alice, template=template, state=DesktopState.RUNNING)
    # When the beat runs at 8:45 the start is refused as theirs would be: no start, no audit, no warm mark
    with work():
        assert warm_personal.warm_all(now=paris(8, 45)) == 0
    habit.refresh_from_db()
    assert habit.state == DesktopState.STOPPED and habit.warm_until is None
    assert not AuditEvent.objects.filter(action=AuditAction.DESKTOP_START, actor__isnull=True).exists()
    # Then once the other desktop stops, the next pass warms it
    Desktop.objects.filter(pk=other.pk).update(state=DesktopState.STOPPED)
    with work():
        assert warm_personal.warm_all(now=paris(8, 46)) == 1


def test_the_idle_policy_leaves_a_warmed_desktop_running_until_arrival_and_grace(habit, alice, work):
    # Given a tenant whose idle policy stops a desktop after 5 minutes, and the desktop warmed at 8:45
    alice.tenant.idle_timeout_minutes = 5
    alice.tenant.save()
    with work():
        assert warm_personal.warm_all(now=paris(8, 45)) == 1
    # (the worker's clock is the wall's: the run began at 8:46 on the test's, last used a week before)
    Desktop.objects.filter(pk=habit.pk).update(running_since=paris(8, 46), last_activity_at=paris(9, 30, day=-7))
    desktop = Desktop.objects.select_related("tenant").get(pk=habit.pk)
    # Then its idle deadline is not 8:51 (as a desktop not warmed would have) but the owner's arrival plus grace
    assert idle.idle_deadline(Desktop.objects.select_related("tenant").get(pk=habit.pk)) == paris(9, 30)
    desktop.warm_until = None
    assert idle.idle_deadline(desktop) == paris(8, 51)
    assert idle.enforce(now=paris(9, 0)) == 0
    assert idle.enforce(now=paris(9, 29)) == 0
    assert Desktop.objects.get(pk=habit.pk).state == DesktopState.RUNNING
    # And once that has passed with nobody there, the idle policy stops it, and no warm-up starts it again
    with work():
        assert idle.enforce(now=paris(9, 31)) == 1
        assert warm_personal.warm_all(now=paris(9, 32)) == 0
    assert Desktop.objects.get(pk=habit.pk).state == DesktopState.STOPPED


def test_the_window_is_the_quarter_hours_that_begin_within_the_lead_time():
    at = datetime(2026, 3, 2, 8, 45, tzinfo=ZoneInfo("Europe/Paris"))
    assert warm_personal.window(at, 15) == (at, at + timedelta(minutes=15))
    assert warm_personal.window(at + timedelta(minutes=1), 15) == (at + timedelta(minutes=15),) * 2
    assert warm_personal.window(at + timedelta(minutes=1), 5) is None
    # A start then its console a minute later is one arrival; a return after lunch is another
    signs = [at, at + timedelta(minutes=1), at + timedelta(minutes=50), at + timedelta(hours=4)]
    assert warm_personal.arrivals(signs) == [at, at + timedelta(hours=4)]


def test_the_policy_is_bounded_audited_and_on_the_policies_page(alice):
    client = api_client(alice.admin, alice.tenant)
    for lead in (4, 121):
        response = client.patch("/api/v1/tenant/current/", {"warm_personal_lead_minutes": lead}, format="json")
        assert response.status_code == 400 and "warm_personal_lead_minutes" in response.json()["errors"]
    assert Tenant.objects.get(pk=alice.tenant.pk).warm_personal_desktops is False  # off by default
    response = client.patch(
        "/api/v1/tenant/current/", {"warm_personal_desktops": True, "warm_personal_lead_minutes": 30}, format="json"
    )
    assert response.status_code == 200 and response.json()["warm_personal_lead_minutes"] == 30
    event = AuditEvent.objects.get(action=AuditAction.TENANT_POLICIES, tenant=alice.tenant)
    assert event.data["before"] == {"warm_personal_desktops": False, "warm_personal_lead_minutes": 15}
    assert event.data["after"] == {"warm_personal_desktops": True, "warm_personal_lead_minutes": 30}
    page = login_client(alice.admin, alice.tenant).get("/manage/policies/").content.decode()
    assert "Warm personal desktops before their owners usually arrive" in page
    assert 'name="warm_personal_lead_minutes" value="30"' in page
