"""Raw samples partitioned by UTC day on PostgreSQL: days made ahead, strays moved in, old days dropped whole.

Each sample table is `PARTITION BY RANGE (at)` with one partition per UTC day, named `<table>_pYYYYMMDD`, and a
`<table>_default` partition that catches a reading for a day nobody made yet, so an insert never fails. `ensure`
(run by the prune beat and once by the migration) makes today's and the next days' partitions and moves whatever
the default caught into its day. Retention drops whole days: no DELETE of millions of rows, no vacuum after it.
SQLite (the embedded default) keeps plain tables; there every function here is a no-op and retention deletes rows.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from desktops.metrics.models import DesktopSample, HostSample

TABLES = (DesktopSample._meta.db_table, HostSample._meta.db_table)
# Today plus two: a beat that stops for a day still finds tomorrow's partition ready.
DAYS_AHEAD = 2
# A stray with an absurd timestamp (a host clock years off) stays in the default instead of making its day.
STRAY_HORIZON = timedelta(days=31)
_DAY_NAME = re.compile(r"_p(\d{8})$")
LOCK_TIMEOUT = "5s"
LOCK_NOT_AVAILABLE = "55P03"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    day: date


def enabled() -> bool:
    """Whether the sample tables are partitioned (PostgreSQL; SQLite keeps plain tables)."""
    return connection.vendor == "postgresql"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def partitions(table: str) -> list[Partition]:
    """The day partitions of `table`, oldest first (the default partition is not a day)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = []
    for name in names:
        day = _day_of(name)
        # Only the names this module gives: another table hung under the parent is not a day to drop.
        if day is not None and name == partition_name(table, day):
            days.append(Partition(table=table, name=name, day=day))
    return sorted(days, key=lambda p: p.day)


def _day_of(name: str) -> date | None:
    match = _DAY_NAME.search(name)
    try:
        return datetime.strptime(match[1], "%Y%m%d").date() if match else None
    except ValueError:
        return None


def _stray_days(cursor, table: str, today: date) -> list[date]:
    """Days of the rows the default partition caught, within the horizon (older ones are retention's)."""
    cursor.execute(
        f"SELECT DISTINCT (at AT TIME ZONE 'UTC')::date FROM \"{default_name(table)}\" WHERE at >= %s AND at < %s",
        [day_start(today) - STRAY_HORIZON, day_start(today) + STRAY_HORIZON],
    )
    return [row[0] for row in cursor.fetchall()]


def _create(cursor, table: str, day: date) -> bool:
    """Make one day's partition, moving in the rows the default caught for it; False when it existed already."""
    name = partition_name(table, day)
    # Two workers making the same day wait for each other instead of failing on "relation already exists".
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if cursor.fetchone()[0]:
        return False
    start, end = day_start(day).isoformat(), day_start(day + timedelta(days=1)).isoformat()
    # PostgreSQL refuses a partition for a range the default already holds rows of: move them out first,
    # into the new table before it is attached, all in this one transaction.
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    cursor.execute(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    cursor.execute(
        f'WITH moved AS (DELETE FROM "{default_name(table)}" WHERE at >= %s AND at < %s RETURNING *) '
        f'INSERT INTO "{name}" SELECT * FROM moved',
        [start, end],
    )
    cursor.execute(f"ALTER TABLE \"{table}\" ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{start}') TO ('{end}')")
    return True


def ensure(*, now: datetime | None = None, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Make today's and the next days' partitions and the days of any strays; the names made."""
    if not enabled():
        return []
    today = (now or timezone.now()).astimezone(UTC).date()
    made = []
    for table in TABLES:
        with transaction.atomic(), connection.cursor() as cursor:
            wanted = {today + timedelta(days=n) for n in range(days_ahead + 1)} | set(_stray_days(cursor, table, today))
            have = {p.day for p in partitions(table)}
        for day in sorted(wanted - have):
            with transaction.atomic(), connection.cursor() as cursor:
                if _create(cursor, table, day):
                    made.append(partition_name(table, day))
    return made


def drop_before(cutoff: datetime) -> list[str]:
    """Drop the day partitions that end at or before `cutoff`: every row in them is older; the names dropped."""
    if not enabled():
        return []
    dropped = []
    for table in TABLES:
        for partition in partitions(table):
            if day_start(partition.day + timedelta(days=1)) > cutoff:
                break
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    # Dropping a partition locks the parent for a moment: behind a long query that moment would
                    # hold every insert up too, so give up quickly and leave the day to the next prune.
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    cursor.execute(f'DROP TABLE "{partition.name}"')
            except OperationalError as error:
                if getattr(error.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                log.warning("partition %s not dropped: its table is busy; the next prune retries", partition.name)
                continue
            dropped.append(partition.name)
    return dropped
