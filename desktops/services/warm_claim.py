"""A launch's common case, the warm claim, as one statement: near the database's floor in a morning storm.

pools.claim_locked() is the claim step by step, and says why it refuses. This is the same claim for the case
that needs no explanation, in one UPDATE … RETURNING on PostgreSQL that picks the candidate, guards the claim,
records the launch and returns what the API's answer shows. Whatever it does not take on (another database,
a hibernated pool, a refusal, the person's own desktop already there) it leaves to the step-by-step path by
claiming nothing: that path then decides as it always has, under the same tenant lock.

Its statement runs after quotas.lock() in the same transaction, so its snapshot sees every launch of the
tenant that went before (READ COMMITTED takes one per statement): the lock and the reads it guards can never
be one statement, since a statement's snapshot is taken before it waits for the lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from desktops.choices import IN_FLIGHT_STATUSES, DesktopState, LaunchKind
from desktops.models import Desktop, DesktopLabel, DesktopSnapshot, DesktopTemplate, Operation, Pool
from desktops.services import network as desktop_network
from desktops.services import pools, quotas
from hosts.models import Host, NetworkLease, TenantNetwork
from tenants.models import Tenant, User


@dataclass(frozen=True)
class Claimed:
    """The claimed desktop with all the answer shows (host, pool, labels, snapshots loaded), and its address."""

    desktop: Desktop
    operation: Operation | None
    address: dict[str, str] | None


def claim(*, locked: Tenant, user: User, template: DesktopTemplate, ip: str | None = None) -> Claimed | None:
    """Hand the person the oldest running warm desktop of the template's pool in one statement, or None.

    None: not claimed this way (see the module's docstring); the caller goes on step by step.
    """
    if connection.vendor != "postgresql" or not locked.is_active:
        return None  # SQLite has no data-modifying WITH; a suspended tenant's refusal is the other path's to say
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("warm_claim.claim() outside transaction.atomic(): no tenant lock can be held")
    now = timezone.now()
    sql, params = _statement(locked=locked, user=user, template=template, now=now)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = iter(row)
    desktop = _instance(Desktop, values)
    pool = _instance(Pool, values)
    host = _instance(Host, values)
    lease = _instance(NetworkLease, values)
    network = _instance(TenantNetwork, values)
    labels, snapshots = next(values), next(values)
    desktop.tenant, desktop.user, desktop.pool = locked, user, pool
    desktop.host = host if desktop.host_id is not None else None
    if desktop.template_id == template.pk:
        desktop.template = template  # else (the pool's template changed since) it is read when needed
    _prefetched(desktop, "labels", [_row(DesktopLabel, label) for label in _json(labels)])
    _prefetched(desktop, "snapshots", [_row(DesktopSnapshot, snapshot) for snapshot in _json(snapshots)])
    address = None
    if lease.pk is not None:
        lease.network = network
        address = desktop_network.lease_address(lease)
    operation = pools.handed_out(locked=locked, user=user, desktop=desktop, pool=pool, ip=ip, boots=False)
    return Claimed(desktop, operation, address)


def _statement(*, locked: Tenant, user: User, template: DesktopTemplate, now: datetime) -> tuple[str, list[Any]]:
    """The claim's SQL and parameters (positional: the running-limit guard is compiled by the ORM)."""
    guard, guard_params = "", list[Any]()
    limit = locked.max_running_per_user
    if limit:
        # The person's running limit, counted as quotas.run_refusal counts it (the warm desktop runs already:
        # only that limit is new). quotas.running_desktops is the one definition of "running".
        running, running_params = quotas.running_desktops(locked).filter(user=user).values("pk").query.sql_with_params()
        guard = f"AND (SELECT count(*) FROM ({running}) AS r) < %s"
        guard_params = [*running_params, limit]
    desktop_columns = _columns(Desktop, "claimed")
    answer = ", ".join(
        [
            desktop_columns,
            _columns(Pool, "p"),
            _columns(Host, "h"),
            _columns(NetworkLease, "nl"),
            _columns(TenantNetwork, "tn"),
        ]
    )
    sql = f"""
        WITH claimed AS (
            UPDATE desktops_desktop AS d
            SET user_id = %s, assigned_at = %s, last_activity_at = %s
            WHERE d.id = (
                -- The oldest running unassigned desktop of the tenant's first enabled pool of the template (the
                -- pool pools.claim_locked picks), when that pool keeps them running; SKIP LOCKED lets concurrent
                -- claimers take different rows instead of queueing on one.
                SELECT c.id FROM desktops_desktop AS c
                WHERE (c.pool_id, %s) = (
                    SELECT p.id, p.warm_state FROM desktops_pool AS p
                    WHERE p.tenant_id = %s AND p.template_id = %s AND p.enabled
                    ORDER BY p.name LIMIT 1
                )
                AND c.user_id IS NULL AND c.state = %s
                -- Not one with an operation queued: a ramp-down release (or a recycle) already decided its fate.
                AND NOT EXISTS (
                    SELECT 1 FROM desktops_operation AS o WHERE o.desktop_id = c.id AND o.status IN (%s, %s)
                )
                ORDER BY c.created_at, c.id LIMIT 1
                FOR UPDATE SKIP LOCKED
            )
            AND d.user_id IS NULL
            -- The person has no desktop of the template yet: else the launch hands back that one.
            AND NOT EXISTS (
                SELECT 1 FROM desktops_desktop AS mine
                WHERE mine.tenant_id = %s AND mine.user_id = %s AND mine.template_id = %s AND mine.state <> %s
            )
            {guard}
            RETURNING d.*
        ),
        timing AS (
            -- readiness.record_launch() for a warm claim: ready now if the guest said so already.
            INSERT INTO desktops_launchtiming (tenant_id, desktop_id, template_id, kind, requested_at, ready_at,
                                               seconds, signal)
            SELECT tenant_id, id, template_id, %s, %s,
                   CASE WHEN ready_at IS NOT NULL THEN %s::timestamptz END,
                   CASE WHEN ready_at IS NOT NULL THEN 0.0 END,
                   CASE WHEN ready_at IS NOT NULL THEN 'already' ELSE '' END
            FROM claimed
        )
        SELECT {answer},
            (SELECT json_agg(json_build_object('id', l.id, 'tenant_id', l.tenant_id, 'desktop_id', l.desktop_id,
                                               'value', l.value) ORDER BY l.id)
             FROM desktops_desktoplabel AS l WHERE l.desktop_id = claimed.id),
            (SELECT json_agg(json_build_object('id', s.id, 'desktop_id', s.desktop_id, 'name', s.name,
                                               'created_at', s.created_at, 'running', s.running)
                             ORDER BY s.created_at DESC)
             FROM desktops_desktopsnapshot AS s WHERE s.desktop_id = claimed.id)
        FROM claimed
        JOIN desktops_pool AS p ON p.id = claimed.pool_id
        LEFT JOIN hosts_host AS h ON h.id = claimed.host_id
        LEFT JOIN hosts_networklease AS nl ON nl.desktop_id = claimed.id
        LEFT JOIN hosts_tenantnetwork AS tn ON tn.id = nl.network_id
    """
    running, deleted = DesktopState.RUNNING.value, DesktopState.DELETED.value
    params = [
        *(user.pk, now, now),
        *(Pool.WarmState.RUNNING.value, locked.pk, template.pk, running, *IN_FLIGHT_STATUSES),
        *(locked.pk, user.pk, template.pk, deleted),
        *guard_params,
        *(LaunchKind.WARM.value, now, now),
    ]
    return sql, params


def _columns(model: type[models.Model], alias: str) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def _instance(model: type[models.Model], values) -> Any:
    """The next len(concrete fields) values of the row as an instance, converted as the ORM converts them."""
    names, converted = [], []
    for field in model._meta.concrete_fields:
        value = next(values)
        column = field.get_col(model._meta.db_table)
        for converter in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
            value = converter(value, column, connection)
        names.append(field.attname)
        converted.append(value)
    return model.from_db(connection.alias, names, converted)


def _json(value) -> list[dict[str, Any]]:
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else value


def _row(model: type[models.Model], values: dict[str, Any]) -> Any:
    """An instance from a json_build_object() of its columns (timestamps come as ISO text there)."""
    if "created_at" in values:
        values = values | {"created_at": parse_datetime(values["created_at"])}
    return model.from_db(connection.alias, list(values), list(values.values()))


def _prefetched(desktop: Desktop, name: str, rows: list[models.Model]) -> None:
    """Fill the relation's cache as prefetch_related does, so desktop.<name>.all() reads nothing."""
    queryset = getattr(desktop, name).all()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    cache = getattr(desktop, "_prefetched_objects_cache", {}) | {name: queryset}
    desktop._prefetched_objects_cache = cache  # type: ignore[attr-defined]
