"""Ramp-down of desktops people hold: notice in the connected person's console, the stop after it, deferral."""

from __future__ import annotations

import threading
import time as clock
from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import connection, transaction

from desktops.choices import DesktopState, OperationKind
from desktops.console import activity
from desktops.metrics import groups
from desktops.metrics.tests.helpers import capture
from desktops.models import Desktop, Operation, Pool, ScalingPlan, StopNotice
from desktops.services import autoscale, pools, ramp_down, scaling
from desktops.tests.factories import PoolFactory
from tenants.events import AuditAction
from tenants.models import AuditEvent
from tests.fixtures import api_client, login_client

# 2026-03-02 is a Monday; Paris is UTC+1 then.
MONDAY_UTC = datetime(2026, 3, 2, tzinfo=UTC)


def paris(hour: int, minute: int = 0) -> datetime:
    return MONDAY_UTC + timedelta(hours=hour - 1, minutes=minute)


@pytest.fixture
def pool(alice, template) -> Pool:
    alice.tenant.time_zone = "Europe/Paris"
    alice.tenant.save()
    return PoolFactory(world=alice, template=template, name="Office", min_ready=1, max_size=8)


@pytest.fixture
def plan(pool, alice) -> ScalingPlan:
    values = {
        "ramp_up_start": time(7),
        "peak_start": time(8, 30),
        "ramp_down_start": time(16, 30),
        "off_peak_start": time(19),
        "ramp_up_minimum": 1,
        "peak_minimum": 1,
        "ramp_down_minimum": 1,
        "off_peak_minimum": 0,
        "stop_in_use": True,
        "notice_minutes": 15,
        "defer_minutes": 10,
    }
    return autoscale.save_plan(pool=pool, actor=alice.admin, values=values)


@pytest.fixture
def held(pool, plan, alice, template, host, work) -> Desktop:
    """A running desktop of the pool that alice's member claimed (at peak, so nothing stops it yet)."""
    with work():
        pools.refill(pool, now=paris(9))
    with work():
        desktop, _ = pools.claim(tenant=alice.tenant, user=alice.member, template=template)
    # Claimed in the morning and last used then (the plan's clock is the test's, not the wall's)
    Desktop.objects.filter(pk=desktop.pk).update(last_activity_at=paris(9))
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.RUNNING and desktop.user == alice.member
    return desktop


def test_it_gives_a_connected_person_notice_in_their_console_and_stops_only_after_it(held, pool, work):
    # Given a person with the desktop's console open at 17:00 Paris (ramp-down)
    activity.console_opened(held.pk)

    def ramp_down_pass() -> None:
        with work():
            pools.refill(pool, now=paris(17))

    # When the plan's pass runs, their console group hears the notice, in the tenant's wall clock
    got = capture({"console": groups.desktop_group(held.pk)}, ramp_down_pass)
    [notice] = [m for m in got["console"] if m["type"] == "stop_notice"]
    assert notice["clock"] == "17:15" and notice["deferrable"] is True and notice["desktop"] == held.pk
    assert notice["at"] == (paris(17, 15)).timestamp()
    # Then nothing stops it before the notice runs out
    with work():
        pools.refill(pool, now=paris(17, 14))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING
    assert not Operation.objects.filter(desktop=held, kind=OperationKind.DELETE).exists()
    # And at the due time it is recycled (the pool's way), audited with the plan as the reason
    with work():
        pools.refill(pool, now=paris(17, 15))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.DELETED
    event = AuditEvent.objects.get(action=AuditAction("desktop.delete"), target_id=str(held.pk))
    assert event.data == {"reason": ramp_down.REASON} and event.actor is None
    assert not StopNotice.objects.filter(desktop=held).exists()


def test_it_records_the_stop_notice_shown_once_in_the_audit_log(held, pool, work):
    # Given a person with the desktop's console open at 17:00 Paris (ramp-down)
    activity.console_opened(held.pk)
    # When two of the plan's passes run before the notice is due
    with work():
        pools.refill(pool, now=paris(17))
    with work():
        pools.refill(pool, now=paris(17, 5))
    # Then the notice shown is in the tenant's audit log once: whose console, when the stop comes, by nobody
    [event] = AuditEvent.objects.filter(action=AuditAction.DESKTOP_STOP_NOTICE)
    assert event.target_id == str(held.pk) and event.tenant_id == held.tenant_id and event.actor is None
    assert event.data == {"user": held.user_id, "due_at": paris(17, 15).isoformat()}
    assert StopNotice.objects.get(desktop=held).due_at == paris(17, 15)


def test_it_stops_a_person_who_is_not_connected_at_once_without_notice(held, pool, work):
    def ramp_down_pass() -> None:
        with work():
            pools.refill(pool, now=paris(17))

    got = capture({"console": groups.desktop_group(held.pk)}, ramp_down_pass)
    assert [m for m in got["console"] if m["type"] == "stop_notice"] == []
    assert not StopNotice.objects.exists()
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.DELETED


def test_it_waits_a_few_minutes_before_stopping_a_desktop_just_claimed_or_left(held, pool, work):
    # Given a person who claimed the desktop at 17:00, during ramp-down, and has not opened its console yet
    Desktop.objects.filter(pk=held.pk).update(last_activity_at=paris(17))
    with work():
        pools.refill(pool, now=paris(17, 4))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING
    # And a pass that read it as quiet before that use does not stop it either
    with work():
        assert ramp_down.stop_now(held.pk, user_id=held.user_id, quiet_since=paris(16, 59)) is False
    # Once it has been quiet for the settling minutes, the plan applies
    with work():
        pools.refill(pool, now=paris(17, 5))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.DELETED


def test_it_applies_no_notice_when_the_plan_gives_none(held, pool, alice, work):
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"notice_minutes": 0})
    activity.console_opened(held.pk)
    with work():
        pools.refill(pool, now=paris(17))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.DELETED


def test_it_stops_at_the_due_time_a_person_who_disconnected_meanwhile(held, pool, work):
    activity.console_opened(held.pk)
    with work():
        pools.refill(pool, now=paris(17))
    assert StopNotice.objects.get(desktop=held).due_at == paris(17, 15)
    # The person closes the tab after the notice: no second notice, no earlier stop
    activity.console_closed(held.pk)
    with work():
        pools.refill(pool, now=paris(17, 5))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING
    with work():
        pools.refill(pool, now=paris(17, 16))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.DELETED


def test_it_leaves_held_desktops_alone_at_peak_and_when_the_plan_does_not_stop_them(held, pool, alice, work):
    with work():
        pools.refill(pool, now=paris(12))
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"stop_in_use": False})
    with work():
        pools.refill(pool, now=paris(20))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING


def test_it_drops_an_announced_stop_when_ramp_up_comes_first(held, pool, alice, work):
    activity.console_opened(held.pk)
    with work():
        pools.refill(pool, now=paris(17))
    assert StopNotice.objects.filter(desktop=held).exists()
    # The admin turns the stop off before it falls due: the notice goes, the desktop stays
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"stop_in_use": False})
    with work():
        pools.refill(pool, now=paris(17, 20))
    assert not StopNotice.objects.exists()
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING


def test_it_defers_through_the_api_where_the_plan_allows_for_the_holder_only(held, pool, alice, bob, work):
    activity.console_opened(held.pk)
    with work():
        pools.refill(pool, now=paris(17))
    url = f"/api/v1/desktops/{held.pk}/defer-stop/"
    # Another tenant gets a 404; the tenant's admin (who may see the desktop) is not the one to defer it
    assert api_client(bob.admin, bob.tenant).post(url).status_code == 404
    refused = api_client(alice.admin, alice.tenant).post(url)
    assert refused.status_code == 403 and refused.json()["code"] == "not_yours"
    # The holder's "Keep working" moves the stop 10 minutes on, pushed to the console and audited
    client = api_client(alice.member, alice.tenant)

    def keep_working() -> None:
        with work():
            assert client.post(url).status_code == 200

    got = capture({"console": groups.desktop_group(held.pk)}, keep_working)
    [pushed] = [m for m in got["console"] if m["type"] == "stop_notice"]
    assert pushed["clock"] == "17:25"
    assert StopNotice.objects.get(desktop=held).due_at == paris(17, 25)
    kept = AuditEvent.objects.get(action=AuditAction.DESKTOP_KEEP_RUNNING, target_id=str(held.pk))
    assert kept.actor == alice.member and kept.data == {"until": paris(17, 25).isoformat()}
    answer = client.get(f"/api/v1/desktops/{held.pk}/stop-notice/").json()
    assert answer["clock"] == "17:25" and answer["deferrable"] is True
    # So the old due time passes without a stop; the new one stops it
    with work():
        pools.refill(pool, now=paris(17, 20))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING
    # A person may put it off a few times only
    for _ in range(ramp_down.MAX_DEFERRALS - 1):
        assert client.post(url).status_code == 200
    last = client.post(url)
    assert last.status_code == 409 and last.json()["code"] == "defer_limit"
    assert client.get(f"/api/v1/desktops/{held.pk}/stop-notice/").json()["deferrable"] is False
    with work():
        pools.refill(pool, now=paris(17, 45))
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.DELETED


def test_it_refuses_a_deferral_the_plan_does_not_allow(held, pool, alice, work):
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"defer_minutes": 0})
    activity.console_opened(held.pk)
    with work():
        pools.refill(pool, now=paris(17))
    client = api_client(alice.member, alice.tenant)
    assert client.get(f"/api/v1/desktops/{held.pk}/stop-notice/").json()["deferrable"] is False
    response = client.post(f"/api/v1/desktops/{held.pk}/defer-stop/")
    assert response.status_code == 409 and response.json()["code"] == "defer_not_allowed"
    assert StopNotice.objects.get(desktop=held).due_at == paris(17, 15)


def test_it_answers_no_notice_when_none_was_announced(held, alice):
    client = api_client(alice.member, alice.tenant)
    assert client.get(f"/api/v1/desktops/{held.pk}/stop-notice/").json() == {
        "due_at": None,
        "clock": None,
        "deferrable": False,
    }
    response = client.post(f"/api/v1/desktops/{held.pk}/defer-stop/")
    assert response.status_code == 409 and response.json()["code"] == "no_stop_notice"


def test_a_person_who_connected_after_the_read_is_not_stopped_without_notice(held, pool, work):
    # Given the pass read the desktop as unconnected, and the person opens the console before the stop
    activity.console_opened(held.pk)
    # When the stale decision is carried out, it does nothing
    with work():
        assert ramp_down.stop_now(held.pk, user_id=held.user_id) is False
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING
    # And the next pass gives them notice instead
    with work():
        pools.refill(pool, now=paris(17))
    assert StopNotice.objects.filter(desktop=held).exists()
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING


def test_a_notice_for_someone_else_stops_nothing_once_the_desktop_changed_hands(held, pool, alice, work):
    activity.console_opened(held.pk)
    with work():
        pools.refill(pool, now=paris(17))
    Desktop.objects.filter(pk=held.pk).update(user=alice.admin)
    notice = StopNotice.objects.get(desktop=held)
    with work():
        assert ramp_down.stop_due(notice.pk, now=paris(17, 30)) is False
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING
    assert not StopNotice.objects.exists()


def test_a_claim_in_between_wins_over_a_surplus_release(pool, plan, alice, template, host, work):
    # Given warm desktops the ramp-down pass read as surplus; three warm in every phase, so the refill the claim
    # sets off (on the wall clock, not the test's 9:00) neither releases nor adds whatever the time of day
    minimums = {f"{phase}_minimum": 3 for phase in scaling.PHASES}
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"release_idle": True, **minimums})
    with work():
        pools.refill(pool, now=paris(9))
    surplus = list(Desktop.objects.filter(pool=pool, user__isnull=True).values_list("pk", flat=True))
    assert len(surplus) == 3
    # When a person claims one of them before the release reaches it
    with work():
        claimed, _ = pools.claim(tenant=alice.tenant, user=alice.member, template=template)
    # Then releasing it does nothing, and the others go
    with work():
        assert autoscale.release_one(pool, claimed.pk) is False
        released = [pk for pk in surplus if pk != claimed.pk and autoscale.release_one(pool, pk)]
    assert len(released) == 2
    claimed.refresh_from_db()
    assert claimed.state == DesktopState.RUNNING and claimed.user == alice.member
    assert not Operation.objects.filter(desktop=claimed, kind=OperationKind.DELETE).exists()


def test_the_console_listens_for_notices_only_where_the_plan_stops_held_desktops(held, pool, alice):
    client = login_client(alice.member, alice.tenant)
    page = client.get(f"/desktops/{held.pk}/console/").content.decode()
    assert 'data-testid="console-stop-notice"' in page and "console_stop.js" in page
    assert f'data-defer-url="/api/v1/desktops/{held.pk}/defer-stop/"' in page
    german = client.get(f"/desktops/{held.pk}/console/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Speichern Sie Ihre Arbeit." in german and "Weiterarbeiten" in german
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"stop_in_use": False})
    page = client.get(f"/desktops/{held.pk}/console/").content.decode()
    assert 'data-testid="console-stop-notice"' not in page and "console_stop.js" not in page


# --- races, on committed rows: another connection holds the row when the stale decision is carried out


def _racing(first, then):
    """Run `first` in a transaction of another connection, and `then` here; the other commits once `then` waits."""
    locked, release, waited = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                first()
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    def watch() -> None:
        # Commit the other side only once this side really waits on its row lock.
        try:
            for _ in range(250):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                    if cursor.fetchone()[0]:
                        waited.set()
                        break
                clock.sleep(0.02)
        finally:
            release.set()
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = then()
    finally:
        holder.join(10)
        watcher.join(10)
    assert waited.is_set(), "this side never waited on the other's lock: no race was run"
    return result


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_holds_the_row_wins_over_the_release_waiting_for_it(pool, plan, alice, template, host, work):
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"release_idle": True, "peak_minimum": 1})
    pools.refill(pool, now=paris(9))
    [warm] = Desktop.objects.filter(pool=pool, user__isnull=True)
    released = _racing(
        lambda: pools.claim(tenant=alice.tenant, user=alice.member, template=template),
        lambda: autoscale.release_one(pool, warm.pk),
    )
    assert released is False
    warm.refresh_from_db()
    assert warm.user == alice.member and warm.state == DesktopState.RUNNING
    assert not Operation.objects.filter(desktop=warm, kind=OperationKind.DELETE).exists()


@pytest.mark.django_db(transaction=True)
def test_a_person_connecting_while_the_stop_waits_is_not_stopped(held, pool, work):
    stop = lambda: ramp_down.stop_now(held.pk, user_id=held.user_id)  # noqa: E731
    stopped = _racing(lambda: activity.console_opened(held.pk), stop)
    assert stopped is False
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING


@pytest.mark.django_db(transaction=True)
def test_a_deferral_while_the_stop_waits_wins(held, pool, alice, work):
    activity.console_opened(held.pk)
    pools.refill(pool, now=paris(17))
    notice = StopNotice.objects.get(desktop=held)
    stopped = _racing(
        lambda: ramp_down.defer(desktop=held, actor=alice.member),
        lambda: ramp_down.stop_due(notice.pk, now=paris(17, 15)),
    )
    assert stopped is False
    assert StopNotice.objects.get(desktop=held).due_at == paris(17, 25)
    assert Desktop.objects.get(pk=held.pk).state == DesktopState.RUNNING


@pytest.mark.parametrize("way", ["launch", "step_by_step"])
def test_a_claim_after_the_release_passes_the_released_desktop_by(way, pool, plan, alice, template, host, work):
    # Given a warm desktop whose ramp-down release is queued but not yet carried out by a worker
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"release_idle": True, "peak_minimum": 2})
    with work():
        pools.refill(pool, now=paris(9))
    doomed, spare = Desktop.objects.filter(pool=pool, user__isnull=True).order_by("created_at", "id")
    assert autoscale.release_one(pool, doomed.pk) is True
    # When a person claims (the oldest warm desktop first): by a launch (one statement) or step by step
    with work():
        if way == "launch":
            body = {"template": template.pk}
            answer = api_client(alice.member, alice.tenant).post("/api/desktop/start", body, format="json")
            claimed_id = answer.json()["desktop"]["id"]
        else:
            claimed_id = pools.claim(tenant=alice.tenant, user=alice.member, template=template)[0].pk
    # Then they get the other one
    assert claimed_id == spare.pk
    doomed.refresh_from_db()
    assert doomed.user is None
