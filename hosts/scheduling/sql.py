"""SQL fragments over hosts_host shared by the filters, the weighers and the claim."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
from django.db import NotSupportedError, connection

HOST = '"hosts_host"'
DEVICE = '"hosts_hostdevice"'
COPY = '"hosts_imagecopy"'


def host(column: str) -> str:
    """A hosts_host column, qualified so the fragment also works inside ORM querysets on Host."""
    return f'{HOST}."{column}"'


def device(column: str) -> str:
    return f'{DEVICE}."{column}"'


# Integers compared with these floats behave as with their floor: n <= 8.0 exactly when n <= 8.
VCPU_CAPACITY = f"({host('cpus')} * {host('cpu_ratio')})"
MEMORY_CAPACITY = f"(({host('memory_mib')} - {host('reserved_memory_mib')}) * {host('ram_ratio')})"
# Under memory overcommit (ram_ratio > 1) the RAM desktops weigh on counts running ones at what they measured at
# the last heartbeat; desktops not measured (stopped, or placed since) count at their whole allocation.
OVERCOMMITS = f"({host('ram_ratio')} > 1)"
PHYSICAL_MEMORY = f"({host('memory_mib')} - {host('reserved_memory_mib')})"
UNMEASURED_MEMORY = f"({host('allocated_memory_mib')} - {host('measured_allocation_mib')})"
MEMORY_LOAD = f"({UNMEASURED_MEMORY} + {host('used_memory_mib')})"


def timestamp(value: datetime) -> object:
    """A datetime as the database driver expects it in raw SQL."""
    return connection.ops.adapt_datetimefield_value(value)


def json_has_key(column: str, key: str) -> tuple[str, list]:
    """SQL testing that a JSON object column has key."""
    if connection.vendor == "postgresql":
        return f"({column} -> %s) IS NOT NULL", [key]
    if connection.vendor == "sqlite":
        return f"json_extract({column}, %s) IS NOT NULL", [_json_path(key)]
    raise NotSupportedError(f"the scheduler does not support {connection.vendor}")


def json_int(column: str, key: str, field: str) -> tuple[str, list]:
    """SQL reading column[key][field] as an integer (0 when missing)."""
    if connection.vendor == "postgresql":
        return f"COALESCE((({column} -> %s) ->> %s)::integer, 0)", [key, field]
    if connection.vendor == "sqlite":
        return f"COALESCE(json_extract({column}, %s), 0)", [f"{_json_path(key)}.{field}"]
    raise NotSupportedError(f"the scheduler does not support {connection.vendor}")


def _json_path(key: str) -> str:
    # A quoted member name, so type ids with dots or dashes are one key.
    return f"$.{json.dumps(key)}"


def fetch(sql: str, params: list) -> list[tuple]:
    """Run a hot read; on PostgreSQL with server-side binding, so psycopg prepares it after a few runs."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    connection.ensure_connection()
    # Django's own cursors bind client-side (literal SQL), so PostgreSQL would plan the ranking
    # query on every placement; a prepared statement saves most of that time.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
