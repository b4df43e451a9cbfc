"""Every way a desktop stops running closes its interval; every start opens one (libvirt test driver)."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone

from billing import tasks
from billing.choices import EndedBy
from billing.models import UsageInterval
from billing.periods import to_second
from billing.services import ledger
from desktops.choices import DesktopState, OperationKind, OperationStatus
from desktops.models import Desktop, Operation
from desktops.services import execution
from desktops.services.reconcile import reconcile_host
from desktops.services.requests import request_action
from hosts.choices import HostState
from hosts.hypervisor import get_hypervisor
from hosts.models import Host
from hosts.services import health
from tests.fixtures import api_client

pytestmark = pytest.mark.usefixtures("billing_on")


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs."""


def _launch(world, template, work) -> Desktop:
    client = api_client(world.member, world.tenant)
    with work():
        response = client.post("/api/desktop/start", {"template": template.pk}, format="json")
    assert response.status_code == 202, response.content
    return Desktop.objects.get(pk=response.json()["desktop"]["id"])


def _act(world, desktop: Desktop, action: str, work) -> Desktop:
    client = api_client(world.member, world.tenant)
    with work():
        response = client.post(f"/api/v1/desktops/{desktop.pk}/{action}/")
    assert response.status_code == 202, response.content
    desktop.refresh_from_db()
    return desktop


def _intervals(desktop: Desktop) -> list[UsageInterval]:
    return list(UsageInterval.objects.filter(desktop=desktop).order_by("started_at", "pk"))


def _assert_consistent(desktop: Desktop) -> None:
    """Open exactly while running, and no second counted twice."""
    found = _intervals(desktop)
    assert len([r for r in found if r.is_open]) == (1 if desktop.state == DesktopState.RUNNING else 0)
    for before, after in pairwise(found):
        assert before.ended_at is not None and before.ended_at <= after.started_at


def test_it_opens_an_interval_when_a_desktop_starts_running(alice, host, template, work):
    desktop = _launch(alice, template, work)
    [interval] = _intervals(desktop)
    assert interval.is_open and interval.started_at == to_second(desktop.running_since)
    assert (interval.tenant, interval.user, interval.template) == (alice.tenant, alice.member, template)
    assert interval.person_email == alice.member.email and interval.price_per_hour == template.price_per_hour


@pytest.mark.parametrize(
    ("action", "final_state", "ended_by"),
    [
        ("stop", DesktopState.STOPPED, EndedBy.STOPPING),
        ("hibernate", DesktopState.HIBERNATED, EndedBy.STOPPING),
        ("suspend", DesktopState.SUSPENDED, EndedBy.SUSPENDED),
    ],
)
def test_it_closes_the_interval_when_the_desktop_stops_running(
    alice, host, template, work, action, final_state, ended_by
):
    # Given a running desktop
    desktop = _launch(alice, template, work)
    # When it is stopped, hibernated or paused
    desktop = _act(alice, desktop, action, work)
    # Then its interval is closed, by what it did, no later than the state change
    assert desktop.state == final_state
    [interval] = _intervals(desktop)
    assert interval.ended_by == ended_by
    assert interval.started_at <= interval.ended_at <= to_second(desktop.state_changed_at)
    _assert_consistent(desktop)


def test_it_opens_a_new_interval_when_a_stopped_desktop_runs_again(alice, host, template, work):
    desktop = _launch(alice, template, work)
    desktop = _act(alice, desktop, "suspend", work)
    desktop = _act(alice, desktop, "resume", work)
    found = _intervals(desktop)
    assert len(found) == 2 and found[1].is_open and found[1].started_at == to_second(desktop.running_since)
    _assert_consistent(desktop)


def test_it_closes_the_interval_when_the_desktop_is_deleted(alice, host, template, work):
    desktop = _launch(alice, template, work)
    client = api_client(alice.member, alice.tenant)
    with work():
        assert client.delete(f"/api/v1/desktops/{desktop.pk}/").status_code == 202
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.DELETED
    [interval] = _intervals(desktop)
    assert interval.ended_by == EndedBy.DELETING
    _assert_consistent(desktop)


def test_it_closes_the_interval_when_the_desktop_fails(alice, host, template, work):
    # Given a running desktop whose VM vanishes from the host
    desktop = _launch(alice, template, work)
    hv = get_hypervisor(host.uri)
    hv.destroy(desktop.domain_name)
    hv.undefine(desktop.domain_name)
    # When reconcile notices
    reconcile_host(host.pk)
    # Then the desktop is in error and its interval closed at that moment
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.ERROR
    [interval] = _intervals(desktop)
    assert interval.ended_by == EndedBy.ERROR and interval.ended_at == to_second(desktop.state_changed_at)


def test_it_closes_intervals_when_the_host_goes_down_and_reopens_when_it_returns(alice, host, template, work):
    # Given a running desktop on a host last heard from 90 seconds ago, now marked down
    desktop = _launch(alice, template, work)
    last_heard = to_second(timezone.now() - timedelta(seconds=90))
    Host.objects.filter(pk=host.pk).update(state=HostState.DOWN, last_heartbeat_at=last_heard)
    # When host health calls the ledger (as it should on marking a host down)
    assert ledger.close_host_intervals(host_id=host.pk, at=last_heard) == 1
    # Then usage stops at the last heartbeat, and the billing beat does not reopen it while down
    [interval] = _intervals(desktop)
    assert interval.ended_at == max(last_heard, interval.started_at) and interval.ended_by == EndedBy.HOST_DOWN
    tasks.maintain_ledger.apply()
    assert not UsageInterval.objects.open().filter(desktop=desktop).exists()
    # When the host answers again with the VM still running, charging resumes from then, not before
    Host.objects.filter(pk=host.pk).update(state=HostState.UP, last_heartbeat_at=timezone.now())
    before = to_second(timezone.now())
    tasks.maintain_ledger.apply()
    reopened = UsageInterval.objects.open().get(desktop=desktop)
    assert reopened.started_at >= before


def test_it_closes_intervals_when_host_health_marks_the_host_down(alice, host, template, work):
    # Given a running desktop on a host that stopped answering 90 seconds ago
    desktop = _launch(alice, template, work)
    last_heard = to_second(timezone.now() - timedelta(seconds=90))
    Host.objects.filter(pk=host.pk).update(last_heartbeat_at=last_heard)
    # When the hosts app's health pass marks it down (it signals; billing's receiver closes usage)
    assert health.mark_stale_hosts_down() == [host.pk]
    # Then usage stopped at the last heartbeat
    [interval] = _intervals(desktop)
    assert interval.ended_by == EndedBy.HOST_DOWN and interval.ended_at == max(last_heard, interval.started_at)


def test_it_closes_intervals_of_a_down_host_even_without_the_health_hook(alice, host, template, work):
    desktop = _launch(alice, template, work)
    last_heard = to_second(timezone.now())
    Host.objects.filter(pk=host.pk).update(state=HostState.DOWN, last_heartbeat_at=last_heard)
    report = ledger.repair_open_intervals()
    [interval] = _intervals(desktop)
    assert report.closed == [interval.pk]
    assert interval.ended_by == EndedBy.HOST_DOWN and interval.ended_at == max(last_heard, interval.started_at)


def _killed_mid_stop(alice, template, work, monkeypatch) -> tuple[Desktop, Operation]:
    """A stop whose worker dies right after moving the desktop to stopping, before the ledger write."""
    desktop = _launch(alice, template, work)
    operation = request_action(desktop=desktop, kind=OperationKind.STOP, actor=alice.member)

    def killed(**kwargs):
        raise WorkerKilled

    monkeypatch.setattr(ledger, "close_open_intervals", killed)
    with pytest.raises(WorkerKilled):
        execution.run(operation.pk)
    monkeypatch.undo()
    desktop.refresh_from_db()
    return desktop, operation


def test_it_repairs_the_interval_of_a_worker_killed_mid_stop(alice, host, template, work, monkeypatch, settings):
    settings.OPERATION_STUCK_AFTER_S = 300
    # Given a stop whose worker was killed after the state change but before the ledger write
    desktop, operation = _killed_mid_stop(alice, template, work, monkeypatch)
    assert desktop.state == DesktopState.STOPPING
    assert UsageInterval.objects.open().filter(desktop=desktop).exists()
    # When the billing beat runs: the interval ends when the desktop left running
    tasks.maintain_ledger.apply()
    [interval] = _intervals(desktop)
    assert interval.ended_at == to_second(desktop.state_changed_at) and interval.ended_by == EndedBy.REPAIR
    # When reconcile later fails the stuck stop and finds the VM still running
    reconcile_host(host.pk, now=timezone.now() + timedelta(seconds=301))
    operation.refresh_from_db()
    desktop.refresh_from_db()
    assert operation.status == OperationStatus.FAILED and desktop.state == DesktopState.RUNNING
    # Then a new interval runs from that moment, and nothing overlaps
    assert UsageInterval.objects.open().get(desktop=desktop).started_at == to_second(desktop.running_since)
    _assert_consistent(desktop)


def test_it_ends_usage_at_the_stop_when_a_killed_stop_had_shut_the_vm(
    alice, host, template, work, monkeypatch, settings
):
    settings.OPERATION_STUCK_AFTER_S = 300
    desktop, _ = _killed_mid_stop(alice, template, work, monkeypatch)
    stopping_at = to_second(desktop.state_changed_at)
    # Given the guest did shut down before the worker died
    get_hypervisor(host.uri).destroy(desktop.domain_name)
    # When reconcile repairs the desktop (calling the ledger repair for its host first, as it should)
    ledger.repair_open_intervals(host_id=host.pk)
    reconcile_host(host.pk, now=timezone.now() + timedelta(seconds=301))
    desktop.refresh_from_db()
    # Then the desktop is stopped and the usage ended when the stop began, not when reconcile ran
    assert desktop.state == DesktopState.STOPPED
    [interval] = _intervals(desktop)
    assert interval.ended_at == stopping_at
    _assert_consistent(desktop)


def test_it_never_blocks_a_state_change_when_the_ledger_fails(alice, host, template, work, monkeypatch):
    desktop = _launch(alice, template, work)

    def broken(**kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(ledger, "close_open_intervals", broken)
    desktop = _act(alice, desktop, "suspend", work)
    assert desktop.state == DesktopState.SUSPENDED
    monkeypatch.undo()
    # And the next billing beat puts the ledger right
    tasks.maintain_ledger.apply()
    [interval] = _intervals(desktop)
    assert interval.ended_at == to_second(desktop.state_changed_at)


def test_it_records_nothing_with_billing_off(alice, host, template, work, settings):
    settings.BILLING_ENABLED = False
    desktop = _launch(alice, template, work)
    _act(alice, desktop, "stop", work)
    assert not UsageInterval.objects.exists()


def test_a_disposable_run_is_billed_to_the_second_until_it_expires(alice, host, template, work):
    from decimal import Decimal

    from billing.periods import month_period
    from billing.services import usage
    from desktops.tasks import reconcile_all

    alice.tenant.max_running_per_user = 0
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    # Given a run of two disposable desktops with a 5-minute life, running (one interval each, open)
    with work():
        made = client.post(
            "/api/v1/disposable-desktops/",
            {"template": template.pk, "count": 2, "ttl_minutes": 5, "labels": ["ci-42"]},
            format="json",
        )
    assert made.status_code == 202, made.content
    desktops = [Desktop.objects.get(pk=d["id"]) for d in made.json()["desktops"]]
    for desktop in desktops:
        [interval] = _intervals(desktop)
        assert interval.is_open and interval.person_email == alice.member.email
    # And they have run for 301 and 299 seconds when their time is up
    now = to_second(timezone.now())
    for desktop, ran in zip(desktops, (301, 299), strict=True):
        UsageInterval.objects.filter(desktop=desktop).update(started_at=now - timedelta(seconds=ran))
    Desktop.objects.filter(pk__in=[d.pk for d in desktops]).update(expires_at=now - timedelta(seconds=1))
    # When the beat's reconcile round deletes them
    with work():
        reconcile_all.delay()
    # Then each run closed at its deletion, billed for the seconds it ran at the template's hourly price
    # (the ledger cuts a row at every hour boundary, so a run across one is two rows)
    billed = 0
    periods = set()
    for desktop, ran in zip(desktops, (301, 299), strict=True):
        desktop.refresh_from_db()
        assert desktop.state == DesktopState.DELETED
        rows = _intervals(desktop)
        assert rows[-1].ended_by == EndedBy.DELETING
        assert ran <= sum(r.seconds for r in rows) <= ran + 60  # the deletion comes a few seconds after "now"
        for row in rows:
            assert row.seconds == int((row.ended_at - row.started_at).total_seconds())
            assert row.amount == (row.price_per_hour * row.seconds / Decimal(3600)).quantize(row.amount)
            periods.add(month_period(row.started_at))
        billed += sum(r.seconds for r in rows)
        _assert_consistent(desktop)
    # And the tenant's usage for the month(s) counts exactly those seconds, nothing still running
    summaries = [usage.summarize(tenant=alice.tenant, period=period) for period in periods]
    assert sum(s.total.seconds for s in summaries) == billed and all(s.running == 0 for s in summaries)
