"""Ledger arithmetic: whole seconds, cut at every hour, priced per row, never overlapping."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, transaction

from billing.models import UsageInterval
from billing.periods import amount_for, hours, parse_period
from billing.services import ledger
from billing.tests.helpers import at, rows, run
from desktops.tests.factories import DesktopFactory
from tests.concurrency import require_postgresql

pytestmark = pytest.mark.usefixtures("billing_on")
P = Decimal("0.1000")


@pytest.fixture
def desktop(alice, template):
    return DesktopFactory(world=alice, template=template)


def test_it_counts_whole_seconds_across_an_hour_boundary(desktop):
    # Given a desktop that ran from just before to just after 11:00
    run(desktop, "2025-01-02 10:59:59.900", "2025-01-02 11:00:00.100")
    # Then the ledger has one second, before the boundary, and nothing of zero length after it
    assert rows(desktop) == [("10:59:59", "11:00:00", 1, P, Decimal("0.000028"))]


def test_it_cuts_a_run_at_each_hour_and_the_parts_add_up(desktop):
    # Given a desktop that ran 09:30:00 to 12:15:30
    run(desktop, "2025-01-02 09:30:00", "2025-01-02 12:15:30")
    # Then there is one row per hour it touched, each exact to the second
    assert rows(desktop) == [
        ("09:30:00", "10:00:00", 1800, P, Decimal("0.050000")),
        ("10:00:00", "11:00:00", 3600, P, Decimal("0.100000")),
        ("11:00:00", "12:00:00", 3600, P, Decimal("0.100000")),
        ("12:00:00", "12:15:30", 930, P, Decimal("0.025833")),
    ]
    total = sum(r.seconds for r in UsageInterval.objects.filter(desktop=desktop))
    assert total == 9930 and hours(total) == Decimal("2.758333")


def test_it_does_not_cut_a_run_that_ends_exactly_on_the_hour(desktop):
    run(desktop, "2025-01-02 10:00:00", "2025-01-02 11:00:00")
    assert rows(desktop) == [("10:00:00", "11:00:00", 3600, P, Decimal("0.100000"))]


def test_it_puts_usage_in_the_month_it_ran(desktop):
    # Given a run across midnight at the end of January
    run(desktop, "2025-01-31 23:30:00", "2025-02-01 00:45:00")
    # Then January has the first half hour and February the rest
    january = UsageInterval.objects.in_period(parse_period("2025-01"))
    february = UsageInterval.objects.in_period(parse_period("2025-02"))
    assert [r.seconds for r in january] == [1800]
    assert sorted(r.seconds for r in february) == [2700]


def test_it_never_charges_the_same_second_twice(desktop):
    # Given a run recorded up to 10:30
    run(desktop, "2025-01-02 10:00:00", "2025-01-02 10:30:00")
    # When a late signal tries to open again at 10:20 (before the recorded end)
    ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:20:00"))
    ledger.close_open_intervals(desktop_id=desktop.pk, at=at("2025-01-02 10:40:00"))
    # Then the second interval starts where the first ended
    assert [(r[0], r[1]) for r in rows(desktop)] == [("10:00:00", "10:30:00"), ("10:30:00", "10:40:00")]


def test_it_opens_once_and_closes_once(desktop):
    first = ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:00:00"))
    again = ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:05:00"))
    assert first.pk == again.pk
    assert ledger.close_open_intervals(desktop_id=desktop.pk, at=at("2025-01-02 10:10:00")) == 1
    assert ledger.close_open_intervals(desktop_id=desktop.pk, at=at("2025-01-02 10:20:00")) == 0
    assert rows(desktop) == [("10:00:00", "10:10:00", 600, P, amount_for(600, P))]


def _on_own_connection(call, **kwargs):
    try:
        return call(**kwargs)
    finally:
        connection.close()


def _wait_for_a_lock_wait() -> None:
    """Return once some session of this test database waits on a lock (the second insert, on the first's row)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError("the second open never waited on the first one's row")


@pytest.mark.django_db(transaction=True)
def test_it_gives_two_racing_opens_the_one_row_the_first_wrote(desktop):
    require_postgresql()
    # Given one start that has written the open row and not yet committed
    written, commit = threading.Event(), threading.Event()
    first: list[UsageInterval] = []

    def open_and_hold() -> None:
        try:
            with transaction.atomic():
                first.append(ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 10:00:00")))
                written.set()
                commit.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=open_and_hold)
    holder.start()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        assert written.wait(30)
        # When a second start, seeing no open row yet, opens too: its insert waits on the first one's row
        second = pool.submit(
            _on_own_connection, ledger.open_interval, desktop_id=desktop.pk, at=at("2025-01-02 10:00:05")
        )
        _wait_for_a_lock_wait()
    finally:
        commit.set()
        holder.join(30)
        pool.shutdown(wait=True)
    # Then, once the first commits, the second is answered with that same row, not with nothing
    assert second.result(30).pk == first[0].pk
    assert UsageInterval.objects.open().filter(desktop=desktop).count() == 1


def test_it_splits_long_runs_at_the_last_hour_so_they_are_reported_hourly(desktop):
    # Given a desktop running since 08:20
    ledger.open_interval(desktop_id=desktop.pk, at=at("2025-01-02 08:20:00"))
    # When the hourly split runs at 10:07
    assert ledger.split_open_intervals(at=at("2025-01-02 10:07:00")) == 1
    # Then everything up to 10:00 is closed (cut per hour) and a row from 10:00 stays open
    assert rows(desktop) == [
        ("08:20:00", "09:00:00", 2400, P, Decimal("0.066667")),
        ("09:00:00", "10:00:00", 3600, P, Decimal("0.100000")),
        ("10:00:00", None, None, P, None),
    ]
    # And running it again in the same hour changes nothing
    assert ledger.split_open_intervals(at=at("2025-01-02 10:59:59")) == 0
