"""Billing periods: every month of the year, in UTC, and the labels an operator types."""

from __future__ import annotations

import time
from calendar import monthrange
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from billing.periods import (
    amount_for,
    floor_hour,
    hour_boundaries,
    hours,
    month_period,
    parse_period,
    seconds_between,
    to_second,
)
from quetzal.errors import ServiceError

MONTHS = range(1, 13)


@pytest.mark.parametrize("month", MONTHS)
def test_it_takes_every_month_of_the_year_as_a_billing_period(month):
    # When an operator asks for a month by its label
    period = parse_period(f"2024-{month:02d}")
    # Then it runs from midnight UTC on the first to midnight UTC on the first of the next month
    assert period.start == datetime(2024, month, 1, tzinfo=UTC)
    assert period.end == (datetime(2025, 1, 1, tzinfo=UTC) if month == 12 else datetime(2024, month + 1, 1, tzinfo=UTC))
    assert period.label == f"2024-{month:02d}"
    # And it has one day per calendar day (2024 is a leap year: February has 29)
    days = period.days()
    assert len(days) == monthrange(2024, month)[1]
    assert days[0] == date(2024, month, 1) and days[-1] == date(2024, month, len(days))


@pytest.mark.parametrize("month", MONTHS)
def test_it_puts_the_last_second_of_a_month_in_that_month(month):
    last_day = monthrange(2025, month)[1]
    moment = datetime(2025, month, last_day, 23, 59, 59, 999999, tzinfo=UTC)
    assert month_period(moment).label == f"2025-{month:02d}"
    assert month_period(moment).start == datetime(2025, month, 1, tzinfo=UTC)
    assert month_period(moment).end == (
        datetime(2026, 1, 1, tzinfo=UTC) if month == 12 else datetime(2025, month + 1, 1, tzinfo=UTC)
    )
    assert month_period(moment + timedelta(microseconds=1)).label == (
        "2026-01" if month == 12 else f"2025-{month + 1:02d}"
    )


def test_it_reads_a_moment_in_utc_whatever_its_zone():
    # 23:30 on 31 January in New York is already February in UTC
    new_york = timezone(timedelta(hours=-5))
    period = month_period(datetime(2025, 1, 31, 23, 30, tzinfo=new_york))
    assert period.label == "2025-02" and period.start == datetime(2025, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize("label", ["2025-00", "2025-13", "2025-1", "25-01", "2025/01", "2025-01-01", "", None, "x"])
def test_it_refuses_a_period_that_is_not_a_month(label):
    with pytest.raises(ServiceError) as refused:
        parse_period(label)
    assert refused.value.code == "invalid_period"
    assert str(refused.value) == "A period is written YYYY-MM, e.g. 2025-01."


def test_it_accepts_a_label_with_spaces_around_it():
    assert parse_period(" 2025-03 \n").label == "2025-03"


# The ledger's time arithmetic


def test_it_cuts_moments_to_the_second_in_utc():
    plus_two = timezone(timedelta(hours=2))
    assert to_second(datetime(2025, 5, 1, 12, 0, 1, 999999, tzinfo=plus_two)) == datetime(
        2025, 5, 1, 10, 0, 1, tzinfo=UTC
    )
    assert floor_hour(datetime(2025, 5, 1, 12, 59, 59, 1, tzinfo=plus_two)) == datetime(2025, 5, 1, 10, tzinfo=UTC)


def test_it_lists_the_whole_hours_strictly_between_two_moments():
    start = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
    assert hour_boundaries(start, start + timedelta(hours=3)) == [
        start + timedelta(hours=1),
        start + timedelta(hours=2),
    ]
    assert hour_boundaries(start + timedelta(minutes=30), start + timedelta(hours=1, seconds=1)) == [
        start + timedelta(hours=1)
    ]
    assert hour_boundaries(start, start + timedelta(minutes=59)) == []


def test_it_counts_seconds_and_prices_them_half_up_to_a_millionth():
    start = datetime(2025, 5, 1, tzinfo=UTC)
    assert seconds_between(start, start + timedelta(seconds=90, microseconds=900000)) == 90
    assert amount_for(3600, Decimal("0.10")) == Decimal("0.100000")
    assert amount_for(1, Decimal("0.0018")) == Decimal("0.000001")  # 0.0000005 rounds up
    assert amount_for(1, Decimal("0.0017")) == Decimal("0.000000")
    assert hours(5400) == Decimal("1.500000")
    assert hours(1) == Decimal("0.000278")


def test_it_reads_a_label_as_a_utc_month_on_a_server_in_another_zone(monkeypatch):
    # Given a server whose local time zone is Tokyo, ahead of UTC (the process's TZ, restored afterwards)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        period = parse_period("2025-03")
        # and a moment late on 28 February UTC, already March in Tokyo, is February's
        february = month_period(datetime(2025, 2, 28, 20, tzinfo=UTC))
    finally:
        monkeypatch.undo()
        time.tzset()
    # Then March still starts at midnight UTC, not at midnight in Tokyo (still February in UTC)
    assert period.start == datetime(2025, 3, 1, tzinfo=UTC) and period.end == datetime(2025, 4, 1, tzinfo=UTC)
    assert february.label == "2025-02" and february.start == datetime(2025, 2, 1, tzinfo=UTC)


def test_it_cuts_at_utc_hours_on_a_server_half_an_hour_off_utc(monkeypatch):
    # Given a server whose local time zone is India's, UTC+05:30 (the process's TZ, restored afterwards)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        floored = floor_hour(datetime(2025, 5, 1, 10, 59, 59, tzinfo=UTC))
        boundaries = hour_boundaries(datetime(2025, 5, 1, 9, 45, tzinfo=UTC), datetime(2025, 5, 1, 11, 15, tzinfo=UTC))
    finally:
        monkeypatch.undo()
        time.tzset()
    # Then hours are UTC hours, not the local ones that start at half past in UTC
    assert floored == datetime(2025, 5, 1, 10, tzinfo=UTC)
    assert boundaries == [datetime(2025, 5, 1, 10, tzinfo=UTC), datetime(2025, 5, 1, 11, tzinfo=UTC)]
