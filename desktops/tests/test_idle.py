"""Idle shutdown and maximum session length, with the clock under the test's control."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from desktops.choices import DesktopState
from desktops.console import activity
from desktops.models import Desktop
from desktops.services import idle, pools
from desktops.tests.factories import DesktopFactory, PoolFactory
from tenants.choices import IdleAction
from tenants.events import AuditAction
from tenants.models import AuditEvent
from tests.fixtures import api_client, login_client


def _running(client, template, work) -> Desktop:
    with work():
        desktop_id = client.post("/api/desktop/start", {"template": template.pk}, format="json").json()["desktop"]["id"]
    return Desktop.objects.get(pk=desktop_id)


def test_it_stops_a_desktop_idle_past_the_timeout(alice, host, template, work):
    # Given a tenant that stops desktops after 30 idle minutes, and a desktop last used at t0
    alice.tenant.idle_timeout_minutes, alice.tenant.idle_action = 30, IdleAction.STOP
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    t0 = desktop.running_since
    # When the beat runs at t0 + 29 min nothing happens; at t0 + 31 min it is stopped with the reason
    assert idle.enforce(now=t0 + timedelta(minutes=29)) == 0
    with work():
        assert idle.enforce(now=t0 + timedelta(minutes=31)) == 1
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.STOPPED
    assert desktop.status_reason == "No keyboard or mouse input for 30 min"


def test_it_stops_a_desktop_whose_open_console_sees_no_input(alice, host, template, work):
    # Given a console left open in a tab, with no keyboard or pointer input since the start
    alice.tenant.idle_timeout_minutes = 30
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    Desktop.objects.filter(pk=desktop.pk).update(consoles_open=1)
    # When the idle time passes, an open tab does not keep it running
    with work():
        assert idle.enforce(now=desktop.running_since + timedelta(minutes=31)) == 1
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.STOPPED


def test_it_leaves_a_desktop_whose_console_reports_input(alice, host, template, work):
    # Given an open console whose proxy reported input 10 minutes ago
    alice.tenant.idle_timeout_minutes = 30
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    typed = desktop.running_since + timedelta(hours=2)
    Desktop.objects.filter(pk=desktop.pk).update(consoles_open=1)
    assert activity.input_seen(desktop.pk, at=typed)
    # Then the idle deadline counts from that input, and the beat leaves it alone before then
    desktop.refresh_from_db()
    assert idle.idle_deadline(desktop) == typed + timedelta(minutes=30)
    assert idle.enforce(now=typed + timedelta(minutes=10)) == 0


def test_it_counts_a_run_from_its_start_not_from_input_in_an_earlier_run(alice, host, template, work):
    alice.tenant.idle_timeout_minutes = 30
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    Desktop.objects.filter(pk=desktop.pk).update(last_activity_at=desktop.running_since - timedelta(days=1))
    desktop.refresh_from_db()
    assert idle.idle_deadline(desktop) == desktop.running_since + timedelta(minutes=30)


def test_it_warns_a_few_minutes_before_and_keeps_running_on_request(alice, host, template, work):
    # Given a desktop 27 minutes into a 30-minute idle time
    alice.tenant.idle_timeout_minutes = 30
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    start = desktop.running_since
    assert not idle.warning_due(desktop, now=start + timedelta(minutes=24))
    assert idle.warning_due(desktop, now=start + timedelta(minutes=27))
    # When the person says they are still working
    deadline = idle.keep_running(desktop=desktop, actor=alice.member, now=start + timedelta(minutes=27))
    # Then the deadline moves 30 minutes on from then, and the warning is gone
    assert deadline == start + timedelta(minutes=57)
    assert not idle.warning_due(desktop, now=start + timedelta(minutes=28))
    assert idle.enforce(now=start + timedelta(minutes=40)) == 0


def test_it_keeps_running_through_the_api_for_the_owner_only(alice, bob, host, template, work):
    alice.tenant.idle_timeout_minutes = 30
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    before = Desktop.objects.get(pk=desktop.pk).last_activity_at
    # Another tenant's person gets a 404, and nothing moves
    other = api_client(bob.member, bob.tenant).post(f"/api/v1/desktops/{desktop.pk}/keep-running/")
    assert other.status_code == 404
    assert Desktop.objects.get(pk=desktop.pk).last_activity_at == before
    # The owner gets the new deadline
    response = api_client(alice.member, alice.tenant).post(f"/api/v1/desktops/{desktop.pk}/keep-running/")
    assert response.status_code == 200
    assert response.json()["idle_action_at"] is not None
    after = Desktop.objects.get(pk=desktop.pk).last_activity_at
    assert after is not None and (before is None or after > before)


def test_it_logs_who_kept_a_desktop_running_once_per_click_that_moved_the_deadline(alice, bob, host, template, work):
    # Given a desktop 27 minutes into a 30-minute idle time
    alice.tenant.idle_timeout_minutes = 30
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    at = desktop.running_since + timedelta(minutes=27)
    kept = AuditEvent.objects.filter(action=AuditAction.DESKTOP_KEEP_RUNNING)
    # When the person clicks "Keep it running", and a late duplicate of that click arrives after it
    deadline = idle.keep_running(desktop=desktop, actor=alice.member, ip="192.0.2.4", now=at)
    idle.keep_running(desktop=desktop, actor=alice.member, now=at - timedelta(seconds=5))
    # Then one line in alice's log says who, from where, and until when; bob's log has none
    (event,) = kept
    assert (event.tenant, event.actor, event.ip_address) == (alice.tenant, alice.member, "192.0.2.4")
    assert event.target_id == str(desktop.pk) and event.data == {"until": deadline.isoformat()}
    assert not kept.filter(tenant=bob.tenant).exists()
    # And the audit page shows it in words
    page = login_client(alice.admin, alice.tenant).get("/manage/audit/?category=desktop").content.decode()
    assert "Kept running (idle shutdown put off)" in page


def test_it_refuses_to_keep_a_stopped_desktop_running(alice, template):
    desktop = DesktopFactory(world=alice, template=template, state=DesktopState.STOPPED)
    response = api_client(alice.member, alice.tenant).post(f"/api/v1/desktops/{desktop.pk}/keep-running/")
    assert response.status_code == 409 and response.json()["code"] == "not_running"


def test_it_counts_from_the_last_activity(alice, host, template, work):
    alice.tenant.idle_timeout_minutes = 30
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    later = desktop.running_since + timedelta(minutes=50)
    Desktop.objects.filter(pk=desktop.pk).update(last_activity_at=later)
    assert idle.enforce(now=later + timedelta(minutes=20)) == 0


def test_it_hibernates_when_the_tenant_says_so(alice, host, template, work):
    alice.tenant.idle_timeout_minutes, alice.tenant.idle_action = 10, IdleAction.HIBERNATE
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    with work():
        idle.enforce(now=desktop.running_since + timedelta(minutes=11))
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.HIBERNATED
    assert "No keyboard or mouse input for 10 min" in desktop.status_reason


def test_it_enforces_the_maximum_session_even_with_a_console_open(alice, host, template, work):
    alice.tenant.max_session_hours, alice.tenant.idle_timeout_minutes = 8, 0
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    Desktop.objects.filter(pk=desktop.pk).update(consoles_open=1)
    assert idle.enforce(now=desktop.running_since + timedelta(hours=7, minutes=59)) == 0
    with work():
        assert idle.enforce(now=desktop.running_since + timedelta(hours=8, minutes=1)) == 1
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.STOPPED
    assert desktop.status_reason == "Reached the maximum session length of 8 h"


def test_it_recycles_idle_pooled_desktops_and_spares_warm_ones(alice, host, template, work):
    alice.tenant.idle_timeout_minutes = 15
    alice.tenant.save()
    pool = PoolFactory(world=alice, template=template, name="p", min_ready=2, max_size=4)
    with work():
        pools.refill(pool)
    with work():  # the claim queues the home's hot-plug; a worker carries it out
        claimed, _ = pools.claim(tenant=alice.tenant, user=alice.member, template=template)
    with work():
        acted = idle.enforce(now=timezone.now() + timedelta(minutes=20))
    assert acted == 1  # the warm, unassigned ones are idle on purpose
    assert Desktop.objects.get(pk=claimed.pk).state == DesktopState.DELETED


def test_it_spares_a_desktop_busy_above_the_cpu_threshold(alice, host, template, work):
    from desktops.metrics.models import DesktopSample

    # Given a tenant that also asks for CPU under 20 % over the 30 idle minutes, and no console open
    alice.tenant.idle_timeout_minutes, alice.tenant.idle_cpu_threshold_percent = 30, 20
    alice.tenant.save()
    desktop = _running(api_client(alice.member, alice.tenant), template, work)
    now = desktop.running_since + timedelta(minutes=45)

    def sample(minutes_ago: int, cpu: float) -> None:
        DesktopSample.objects.create(
            desktop=desktop, tenant=alice.tenant, host=host, at=now - timedelta(minutes=minutes_ago), cpu_percent=cpu
        )

    # When the guest worked at 55 % ten minutes ago, it is not idle
    sample(40, 90.0)  # before the window: does not count
    sample(10, 55.0)
    sample(2, 3.0)
    assert idle.enforce(now=now) == 0
    # When it only ever went to 12 % within the window, the idle action applies
    DesktopSample.objects.filter(cpu_percent=55.0).update(cpu_percent=12.0)
    with work():
        assert idle.enforce(now=now) == 1
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.STOPPED


def test_it_puts_the_still_working_banner_on_the_console_only_where_an_idle_policy_acts(alice, template):
    desktop = DesktopFactory(world=alice, template=template, state=DesktopState.RUNNING)
    client = login_client(alice.member, alice.tenant)
    # Without an idle policy the console page has no banner and loads no watcher
    alice.tenant.idle_timeout_minutes = 0
    alice.tenant.save()
    page = client.get(f"/desktops/{desktop.pk}/console/").content.decode()
    assert 'data-testid="console-idle-warning"' not in page and "console_idle.js" not in page
    # With a 6-minute idle time it warns 3 minutes before (half the idle time, shorter than the usual 5)
    alice.tenant.idle_timeout_minutes, alice.tenant.idle_action = 6, IdleAction.HIBERNATE
    alice.tenant.save()
    page = client.get(f"/desktops/{desktop.pk}/console/").content.decode()
    assert 'data-testid="console-idle-warning"' in page and 'data-warn-seconds="180"' in page
    assert f'data-keep-url="/api/v1/desktops/{desktop.pk}/keep-running/"' in page
    assert "it hibernates" in page and "console_idle.js" in page
