"""Raw samples partitioned by UTC day on PostgreSQL (SQLite keeps its plain tables); every row is kept.

PostgreSQL wants the partition key in every unique constraint, so the table's primary key is (id, at) while Django
keeps `id` as the model's primary key: ids come from one sequence, so they stay unique on their own, and Django never
needs to know. (A CompositePrimaryKey would change the model for every caller, and Django cannot migrate a table to
or from one.) The partitions are named as desktops/metrics/partitions.py expects; it makes the later days.
"""

import re
from datetime import UTC, date, datetime, time, timedelta

from django.db import migrations

TABLES = ("desktops_desktopsample", "desktops_hostsample")


def _fetch(cursor, sql: str, params=None) -> list:
    cursor.execute(sql, params or [])
    return cursor.fetchall()


def _carried(cursor, table: str) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    """What the rebuilt table takes over: column names, foreign keys (name, definition) and index definitions."""
    columns = [
        row[0]
        for row in _fetch(
            cursor,
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum",
            [table],
        )
    ]
    foreign_keys = _fetch(
        cursor,
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'"
        " ORDER BY conname",
        [table],
    )
    # Indexes other than the primary key's, by name; re-created on the new table under the same names.
    indexes = _fetch(
        cursor,
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = %s::regclass AND NOT x.indisprimary ORDER BY i.relname",
        [table],
    )
    return columns, foreign_keys, indexes


def _set_aside(cursor, table: str) -> str:
    """Rename the table (and its primary key and sequence) out of the way; its indexes go; the new name."""
    old = f"{table}_old"
    sequence = _fetch(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [table])[0][0]
    primary_key = _fetch(
        cursor, "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", [table]
    )[0][0]
    for name, _ in _carried(cursor, table)[2]:
        cursor.execute(f'DROP INDEX "{name}"')
    cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    cursor.execute(f'ALTER INDEX "{primary_key}" RENAME TO "{old}_pkey"')
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO \"{old}_id_seq\"")
    return old


def _finish(cursor, table: str, old: str, carried) -> None:
    """Copy the rows over, then the foreign keys and indexes, carry the id sequence on and drop the old table."""
    columns, foreign_keys, indexes = carried
    names = ", ".join(f'"{c}"' for c in columns)
    cursor.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM "{old}"')
    for name, definition in foreign_keys:
        cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        # Read before the rename, so the definition names this table (a partitioned one's says ON ONLY, which
        # would leave the partitions without the index).
        cursor.execute(re.sub(r" ON (ONLY )?\S+ ", f' ON "{table}" ', definition, count=1))
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT max(id) FROM \"{old}\"), 0) + 1, false)"
    )
    cursor.execute(f'DROP TABLE "{old}"')


def _day_start(day: date) -> str:
    return datetime.combine(day, time(), UTC).isoformat()


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    today = datetime.now(UTC).date()
    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            carried = _carried(cursor, table)
            old = _set_aside(cursor, table)
            cursor.execute(f'CREATE SEQUENCE "{table}_id_seq" AS bigint')
            cursor.execute(
                f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS,'
                f' CONSTRAINT "{table}_pkey" PRIMARY KEY (id, at)) PARTITION BY RANGE (at)'
            )
            cursor.execute(f"ALTER TABLE \"{table}\" ALTER COLUMN id SET DEFAULT nextval('\"{table}_id_seq\"')")
            cursor.execute(f'ALTER SEQUENCE "{table}_id_seq" OWNED BY "{table}".id')
            days = {row[0] for row in _fetch(cursor, f'SELECT DISTINCT (at AT TIME ZONE \'UTC\')::date FROM "{old}"')}
            days |= {today + timedelta(days=n) for n in range(3)}
            for day in sorted(days):
                cursor.execute(
                    f'CREATE TABLE "{table}_p{day:%Y%m%d}" PARTITION OF "{table}"'
                    f" FOR VALUES FROM ('{_day_start(day)}') TO ('{_day_start(day + timedelta(days=1))}')"
                )
            cursor.execute(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT')
            _finish(cursor, table, old, carried)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            carried = _carried(cursor, table)
            old = _set_aside(cursor, table)
            cursor.execute(
                f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING CONSTRAINTS INCLUDING DEFAULTS,'
                f' CONSTRAINT "{table}_pkey" PRIMARY KEY (id))'
            )
            cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN id DROP DEFAULT')
            cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY')
            _finish(cursor, table, old, carried)


class Migration(migrations.Migration):

    # Each table is rebuilt in one transaction: a failure leaves the old table as it was.
    atomic = True

    dependencies = [
        ("metrics", "0002_host_node_figures"),
    ]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
