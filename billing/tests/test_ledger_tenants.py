"""Many desktops of several tenants billed at once: each close, split and repair touches only its own rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models.signals import post_save

from billing.choices import EndedBy
from billing.models import UsageInterval
from billing.services import ledger
from billing.tests.helpers import at, rows, run
from desktops.choices import DesktopKind, DesktopState
from desktops.models import Desktop
from desktops.tests.factories import DesktopFactory
from hosts.choices import HostState
from hosts.tests.factories import HostFactory
from tenants.events import AuditAction
from tenants.models import AuditEvent

pytestmark = pytest.mark.usefixtures("billing_on")
P = Decimal("0.1000")


@pytest.fixture
def two(alice, bob, template) -> tuple[Desktop, Desktop]:
    return DesktopFactory(world=alice, template=template), DesktopFactory(world=bob, template=template)


def test_it_stops_billing_one_tenants_desktop_and_keeps_billing_the_others(two):
    # Given alice's and bob's desktops both running since 09:00
    mine, theirs = two
    run(mine, "2025-01-02 09:00:00")
    run(theirs, "2025-01-02 09:00:00")
    # When alice's stops at 09:20
    closed = ledger.close_open_intervals(desktop_id=mine.pk, at=at("2025-01-02 09:20:00"), ended_by=EndedBy.STOPPING)
    # Then only alice's interval is closed, with alice's twenty minutes
    assert closed == 1
    assert rows(mine) == [("09:00:00", "09:20:00", 1200, P, Decimal("0.033333"))]
    # And bob's still runs on, open
    assert rows(theirs) == [("09:00:00", None, None, P, None)]
    # And when bob's stops later, it is charged its own time
    ledger.close_open_intervals(desktop_id=theirs.pk, at=at("2025-01-02 09:45:00"), ended_by=EndedBy.STOPPING)
    assert rows(theirs) == [("09:00:00", "09:45:00", 2700, P, Decimal("0.075000"))]
    assert UsageInterval.objects.get(desktop=theirs).ended_by == EndedBy.STOPPING


def test_it_cuts_one_desktop_at_the_hour_without_touching_the_other(two):
    mine, theirs = two
    run(mine, "2025-01-02 09:30:00")
    run(theirs, "2025-01-02 09:40:00")
    ledger.close_open_intervals(desktop_id=mine.pk, at=at("2025-01-02 11:10:00"), ended_by=EndedBy.STOPPING)
    assert rows(mine) == [
        ("09:30:00", "10:00:00", 1800, P, Decimal("0.050000")),
        ("10:00:00", "11:00:00", 3600, P, Decimal("0.100000")),
        ("11:00:00", "11:10:00", 600, P, Decimal("0.016667")),
    ]
    # Only the last part says why it ended; the others were cut at the hour
    assert [r.ended_by for r in UsageInterval.objects.filter(desktop=mine).order_by("started_at")] == [
        EndedBy.SPLIT,
        EndedBy.SPLIT,
        EndedBy.STOPPING,
    ]
    assert rows(theirs) == [("09:40:00", None, None, P, None)]


def test_it_splits_every_running_desktop_at_the_hour_each_in_its_own_rows(alice, bob, two):
    # Given two tenants' desktops running since before 10:00, and one that started after it
    mine, theirs = two
    late = DesktopFactory(world=alice, template=mine.template, user=alice.owner)
    run(mine, "2025-01-02 09:10:00")
    run(theirs, "2025-01-02 09:50:00")
    run(late, "2025-01-02 10:05:00")
    # When the hourly split runs at 10:07
    assert ledger.split_open_intervals(at=at("2025-01-02 10:07:00")) == 2
    # Then each of the two is closed at 10:00 and continues in an open row of its own
    assert rows(mine) == [("09:10:00", "10:00:00", 3000, P, Decimal("0.083333")), ("10:00:00", None, None, P, None)]
    assert rows(theirs) == [("09:50:00", "10:00:00", 600, P, Decimal("0.016667")), ("10:00:00", None, None, P, None)]
    continued = UsageInterval.objects.open().get(desktop=theirs)
    assert (continued.tenant_id, continued.user_id, continued.person_email) == (
        bob.tenant.pk,
        bob.member.pk,
        bob.member.email,
    )
    # And the one that started after the hour is left as it was
    assert rows(late) == [("10:05:00", None, None, P, None)]


def test_it_closes_only_the_desktops_of_the_host_that_went_down(alice, bob, two):
    down, up = HostFactory(), HostFactory()
    mine, theirs = two
    Desktop.objects.filter(pk=mine.pk).update(host=down)
    Desktop.objects.filter(pk=theirs.pk).update(host=up)
    run(mine, "2025-01-02 09:00:00")
    run(theirs, "2025-01-02 09:00:00")
    assert ledger.close_host_intervals(host_id=down.pk, at=at("2025-01-02 09:30:00")) == 1
    assert rows(mine) == [("09:00:00", "09:30:00", 1800, P, Decimal("0.050000"))]
    assert UsageInterval.objects.get(desktop=mine).ended_by == EndedBy.HOST_DOWN
    assert rows(theirs) == [("09:00:00", None, None, P, None)]
    # And the platform's audit log says which host, when, and how many
    event = AuditEvent.objects.get(action=AuditAction.BILLING_HOST_DOWN_CLOSED)
    assert event.data == {"host_id": down.pk, "at": at("2025-01-02 09:30:00").isoformat(), "intervals": 1}
    # Nothing left open on it: a second report closes nothing and logs nothing
    assert ledger.close_host_intervals(host_id=down.pk, at=at("2025-01-02 09:40:00")) == 0
    assert AuditEvent.objects.filter(action=AuditAction.BILLING_HOST_DOWN_CLOSED).count() == 1


def test_it_repairs_each_tenants_ledger_by_what_its_desktop_did(alice, bob, charlie, template):
    # (a fixed hour, so that no row is cut at a boundary)
    now = at("2025-01-02 10:45:00")
    down = HostFactory(state=HostState.DOWN, last_heartbeat_at=now - timedelta(minutes=10))
    # alice's desktop stopped 5 minutes ago but its row stayed open (a crash in between)
    stopped = DesktopFactory(world=alice, template=template)
    ledger.open_interval(desktop_id=stopped.pk, at=now - timedelta(minutes=30))
    Desktop.objects.filter(pk=stopped.pk).update(
        state=DesktopState.STOPPED, state_changed_at=now - timedelta(minutes=5)
    )
    # bob's runs on a host that went silent 10 minutes ago
    stranded = DesktopFactory(world=bob, template=template, host=down)
    ledger.open_interval(desktop_id=stranded.pk, at=now - timedelta(minutes=30))
    # charlie's runs, billed, on a healthy host; and alice's owner's runs with no open row
    fine = DesktopFactory(world=charlie, template=template, host=HostFactory())
    ledger.open_interval(desktop_id=fine.pk, at=now - timedelta(minutes=30))
    missing = DesktopFactory(
        world=alice, template=template, user=alice.owner, running_since=now - timedelta(minutes=20)
    )
    # When the repair runs
    report = ledger.repair_open_intervals(now=now)
    # Then each row ends when its own desktop stopped
    assert UsageInterval.objects.get(desktop=stopped).ended_at == now - timedelta(minutes=5)
    assert UsageInterval.objects.get(desktop=stranded).ended_at == now - timedelta(minutes=10)
    assert UsageInterval.objects.get(desktop=stranded).ended_by == EndedBy.HOST_DOWN
    assert UsageInterval.objects.get(desktop=fine).is_open
    # And the running desktop with no row is charged from when it started
    opened = UsageInterval.objects.get(desktop=missing)
    assert opened.is_open and opened.started_at == now - timedelta(minutes=20)
    assert sorted(report.closed) == sorted(
        UsageInterval.objects.filter(desktop__in=[stopped, stranded]).values_list("pk", flat=True)
    )
    assert report.opened == [opened.pk]


# What an open row records


def test_it_records_who_ran_what_in_which_currency(alice, template, settings):
    settings.BILLING_CURRENCY = "EUR"
    desk = DesktopFactory(world=alice, template=template, name="Desk")
    row = ledger.open_interval(desktop_id=desk.pk, at=at("2025-01-02 09:00:00.700"))
    assert (row.tenant_id, row.desktop_id, row.desktop_name, row.user_id, row.person_email) == (
        alice.tenant.pk,
        desk.pk,
        "Desk",
        alice.member.pk,
        alice.member.email,
    )
    assert (row.template_id, row.template_name, row.currency, row.price_per_hour) == (
        template.pk,
        template.name,
        "eur",
        template.price_per_hour,
    )
    assert row.started_at == at("2025-01-02 09:00:00") and row.ended_at is None


def test_it_bills_a_pooled_desktop_nobody_holds_to_nobody(alice, template):
    pooled = DesktopFactory(world=alice, template=template, user=None, kind=DesktopKind.POOLED)
    row = ledger.open_interval(desktop_id=pooled.pk, at=at("2025-01-02 09:00:00"))
    assert row.user_id is None and row.person_email == ""


def test_it_opens_nothing_when_billing_is_off_or_the_desktop_is_gone(alice, template, settings):
    desk = DesktopFactory(world=alice, template=template)
    settings.BILLING_ENABLED = False
    assert ledger.open_interval(desktop_id=desk.pk, at=at("2025-01-02 09:00:00")) is None
    assert ledger.repair_open_intervals(now=at("2025-01-02 09:00:00")).opened == []
    settings.BILLING_ENABLED = True
    assert ledger.open_interval(desktop_id=desk.pk + 1000, at=at("2025-01-02 09:00:00")) is None
    assert not UsageInterval.objects.exists()


def test_it_opens_once_and_never_before_the_last_close(alice, template):
    desk = DesktopFactory(world=alice, template=template)
    first = ledger.open_interval(desktop_id=desk.pk, at=at("2025-01-02 09:00:00"))
    assert ledger.open_interval(desktop_id=desk.pk, at=at("2025-01-02 09:05:00")) == first
    ledger.close_open_intervals(desktop_id=desk.pk, at=at("2025-01-02 09:30:00"), ended_by=EndedBy.STOPPING)
    # A start reported with an earlier clock than the stop opens at the stop, so no second is charged twice
    again = ledger.open_interval(desktop_id=desk.pk, at=at("2025-01-02 09:20:00"))
    assert again.started_at == at("2025-01-02 09:30:00")
    later = at("2025-01-02 09:40:00")
    ledger.close_open_intervals(desktop_id=desk.pk, at=later, ended_by=EndedBy.STOPPING)
    assert ledger.open_interval(desktop_id=desk.pk, at=at("2025-01-02 09:50:00")).started_at == at(
        "2025-01-02 09:50:00"
    )


def test_it_never_closes_a_row_before_it_started(alice, template):
    desk = DesktopFactory(world=alice, template=template)
    run(desk, "2025-01-02 09:30:00")
    ledger.close_open_intervals(desktop_id=desk.pk, at=at("2025-01-02 09:10:00"), ended_by=EndedBy.STOPPING)
    assert rows(desk) == [("09:30:00", "09:30:00", 0, P, Decimal("0.000000"))]


# Where a repair starts charging a running desktop that lost its open row


def _lost_row(world, template, *, since, last_end=None, ended_by=EndedBy.STOPPING):
    desk = DesktopFactory(world=world, template=template, running_since=since, state_changed_at=since)
    if last_end is not None:
        UsageInterval.objects.create(
            tenant_id=desk.tenant_id,
            desktop=desk,
            desktop_name=desk.name,
            template=template,
            template_name=template.name,
            currency="usd",
            price_per_hour=P,
            started_at=last_end - timedelta(minutes=5),
            ended_at=last_end,
            seconds=300,
            amount=Decimal("0.008333"),
            ended_by=ended_by,
        )
    return desk


def _repaired_start(desk, now):
    ledger.repair_open_intervals(now=now)
    return UsageInterval.objects.open().get(desktop=desk).started_at


def test_it_charges_a_running_desktop_from_when_it_started_within_the_last_hour(alice, template):
    now = at("2025-01-02 10:45:00")
    recent = _lost_row(alice, template, since=now - timedelta(minutes=50))
    assert _repaired_start(recent, now) == now - timedelta(minutes=50)
    # Never from further back than an hour: older time predates the ledger
    old = _lost_row(alice, template, since=now - timedelta(hours=5))
    assert _repaired_start(old, now) == now - timedelta(hours=1)


def test_it_charges_a_running_desktop_from_its_last_recorded_stop_when_that_is_later(alice, template):
    now = at("2025-01-02 10:45:00")
    desk = _lost_row(alice, template, since=now - timedelta(minutes=50), last_end=now - timedelta(minutes=20))
    assert _repaired_start(desk, now) == now - timedelta(minutes=20)


def test_it_does_not_charge_the_time_a_desktops_host_was_down(alice, template):
    # Given a desktop whose row was closed when its host went down, at or after it started running
    now = at("2025-01-02 10:45:00")
    since = now - timedelta(minutes=50)
    later = _lost_row(alice, template, since=since, last_end=now - timedelta(minutes=30), ended_by=EndedBy.HOST_DOWN)
    same = _lost_row(alice, template, since=since, last_end=since, ended_by=EndedBy.HOST_DOWN)
    # Then, running again, it is charged from now: the time until its host came back is not its own
    assert _repaired_start(later, now) == now
    assert _repaired_start(same, now) == now
    # While a host-down close from before the current run does not hold it back
    before = _lost_row(alice, template, since=since, last_end=since - timedelta(minutes=1), ended_by=EndedBy.HOST_DOWN)
    assert _repaired_start(before, now) == since


def test_it_continues_a_split_row_as_it_was_opened_even_if_the_desktop_changed_since(alice, template):
    desk = DesktopFactory(world=alice, template=template, name="Before")
    run(desk, "2025-01-02 09:10:00")
    Desktop.objects.filter(pk=desk.pk).update(name="Renamed", user=alice.owner)
    ledger.split_open_intervals(at=at("2025-01-02 10:07:00"))
    continued = UsageInterval.objects.open().get(desktop=desk)
    assert (continued.desktop_name, continued.user_id, continued.person_email) == (
        "Before",
        alice.member.pk,
        alice.member.email,
    )


def test_it_splits_the_others_when_one_desktop_stops_during_the_split(alice, bob, charlie, template):
    # Given three tenants' desktops running since before 10:00
    desks = [DesktopFactory(world=w, template=template) for w in (alice, bob, charlie)]
    for desk in desks:
        run(desk, "2025-01-02 09:30:00")
    stopped: list[int] = []

    def stop_another(sender, instance, created, **kwargs):
        # While the split continues the first row, another process stops one of the others
        if created and instance.ended_at is None and not stopped:
            other = (
                UsageInterval.objects.open()
                .filter(started_at__lt=at("2025-01-02 10:00:00"))
                .exclude(desktop_id=instance.desktop_id)
                .first()  # the next one the split will come to (it goes newest row first)
            )
            stopped.append(other.desktop_id)
            UsageInterval.objects.filter(pk=other.pk).update(ended_at=at("2025-01-02 09:59:00"), ended_by="stopping")

    post_save.connect(stop_another, sender=UsageInterval, dispatch_uid="stop_another")
    try:
        split = ledger.split_open_intervals(at=at("2025-01-02 10:07:00"))
    finally:
        post_save.disconnect(dispatch_uid="stop_another")
    # Then the stopped one is left alone and the remaining one is still split
    assert split == 2
    continued = set(UsageInterval.objects.open().values_list("desktop_id", flat=True))
    assert continued == {d.pk for d in desks} - set(stopped)


def test_it_repairs_only_the_host_it_is_asked_about(alice, bob, template):
    now = at("2025-01-02 10:45:00")
    here, there = HostFactory(), HostFactory()
    rows_by_host = {}
    for world, host in ((alice, here), (bob, there)):
        desk = DesktopFactory(world=world, template=template, host=host)
        ledger.open_interval(desktop_id=desk.pk, at=now - timedelta(minutes=30))
        Desktop.objects.filter(pk=desk.pk).update(
            state=DesktopState.STOPPED, state_changed_at=now - timedelta(minutes=5)
        )
        rows_by_host[host.pk] = UsageInterval.objects.get(desktop=desk)
    # and a running desktop without a row on each host
    unbilled = {host.pk: DesktopFactory(world=alice, template=template, host=host) for host in (here, there)}
    report = ledger.repair_open_intervals(now=now, host_id=here.pk)
    assert report.closed == [rows_by_host[here.pk].pk]
    assert UsageInterval.objects.get(pk=rows_by_host[there.pk].pk).is_open
    assert report.opened == [UsageInterval.objects.open().get(desktop=unbilled[here.pk]).pk]
    assert not UsageInterval.objects.filter(desktop=unbilled[there.pk]).exists()


def test_it_closes_the_open_row_of_a_deleted_desktop_now(alice, template):
    now = at("2025-01-02 10:45:00")
    desk = DesktopFactory(world=alice, template=template)
    row = ledger.open_interval(desktop_id=desk.pk, at=now - timedelta(minutes=30))
    Desktop.objects.filter(pk=desk.pk).delete()
    assert ledger.repair_open_intervals(now=now).closed == [row.pk]
    row.refresh_from_db()
    assert (row.ended_at, row.ended_by, row.desktop_id) == (now, EndedBy.REPAIR, None)
    event = AuditEvent.objects.get(action=AuditAction.BILLING_INTERVAL_REPAIRED)
    assert event.data == {"desktop_id": None, "closed_at": now.isoformat(), "why": EndedBy.REPAIR}


def test_it_leaves_a_row_closed_by_the_desktops_own_stop_during_a_repair(alice, bob, template):
    # Given two stopped desktops whose rows stayed open
    now = at("2025-01-02 10:45:00")
    desks = [DesktopFactory(world=w, template=template) for w in (alice, bob)]
    for desk in desks:
        ledger.open_interval(desktop_id=desk.pk, at=now - timedelta(minutes=30))
        Desktop.objects.filter(pk=desk.pk).update(
            state=DesktopState.STOPPED, state_changed_at=now - timedelta(minutes=5)
        )
    stopped_meanwhile: list[int] = []

    def stop_the_other(sender, instance, created, **kwargs):
        # While the repair logs its first close, the other desktop's own stop closes its row
        if created and instance.action == AuditAction.BILLING_INTERVAL_REPAIRED and not stopped_meanwhile:
            other = next(d for d in desks if d.pk != instance.data["desktop_id"])
            stopped_meanwhile.append(other.pk)
            ledger.close_open_intervals(desktop_id=other.pk, at=now - timedelta(minutes=4), ended_by="stopping")

    post_save.connect(stop_the_other, sender=AuditEvent, dispatch_uid="stop_the_other")
    try:
        report = ledger.repair_open_intervals(now=now)
    finally:
        post_save.disconnect(dispatch_uid="stop_the_other")
    # Then the repair closed only the first; the other keeps the close its stop wrote
    (other,) = stopped_meanwhile
    assert report.closed == list(UsageInterval.objects.exclude(desktop_id=other).values_list("pk", flat=True))
    row = UsageInterval.objects.get(desktop_id=other)
    assert (row.ended_at, row.ended_by) == (now - timedelta(minutes=4), "stopping")
