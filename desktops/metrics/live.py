"""Pushing live messages to channel-layer groups: encoded once per group, small, best-effort."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import async_to_sync

from desktops.metrics import conf, groups
from desktops.metrics.layer import live_layer

log = logging.getLogger(__name__)

# The channel-layer event type; LiveConsumer.live_push forwards its text as it is.
EVENT_TYPE = "live.push"
# group_sends in flight at once: enough to hide Redis round trips, few enough for its connection pool.
_CONCURRENCY = 32


@dataclass(frozen=True)
class Push:
    """One message for one group, already encoded as the browser will receive it."""

    group: str
    text: str


def encode(payload: dict) -> str:
    """Compact JSON, as sent to browsers."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def push(group: str, topic: str, payload: dict) -> Push:
    """A message for `group`, labelled with the topic the browser subscribed to."""
    return Push(group=group, text=encode({**payload, "topic": topic}))


def epoch(at: datetime) -> float:
    """Seconds since the epoch with millisecond precision (what charts and lag checks use)."""
    return round(at.timestamp(), 3)


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _pubsub_batches(layer, pushes: Sequence[Push]) -> dict | None:
    """Redis pub/sub: the pushes grouped by shard as (Redis channel, payload); None for other layers."""
    try:
        from channels_redis.pubsub import RedisPubSubChannelLayer
    except ImportError:
        return None
    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    try:
        loop_layer = layer._get_layer()
        batches: dict = defaultdict(list)
        for item in pushes:
            name = loop_layer._get_group_channel_name(item.group)
            payload = layer.serialize({"type": EVENT_TYPE, "text": item.text})
            batches[loop_layer._get_shard(name)].append((name, payload))
        # Every attribute the send needs is checked before anything is sent, so a fallback never doubles.
        if not all(hasattr(shard, attr) for shard in batches for attr in ("_lock", "_ensure_redis")):
            raise AttributeError("RedisSingleShardConnection")
    except AttributeError:
        # channels_redis changed its internals: group_send one by one still works.
        log.warning("channels_redis pub/sub internals changed; pushes go one by one")
        return None
    return batches


async def _send_all(layer, pushes: Sequence[Push]) -> None:
    batches = _pubsub_batches(layer, pushes)
    if batches is not None:
        # One pipelined round trip per shard instead of one PUBLISH each: a busy worker is scheduled
        # out at every round trip, and sixty of them stretched one collection's pushes by 100+ ms.
        for shard, items in batches.items():
            async with shard._lock:
                shard._ensure_redis()
                pipe = shard._redis.pipeline(transaction=False)
                for name, payload in items:
                    pipe.publish(name, payload)
                await pipe.execute()
        return
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def send(item: Push) -> None:
        async with gate:
            await layer.group_send(item.group, {"type": EVENT_TYPE, "text": item.text})

    await asyncio.gather(*(send(item) for item in pushes))


def publish(pushes: Iterable[Push]) -> int:
    """Send every push to its group; how many were sent. Never raises: live numbers are best-effort."""
    pushes = list(pushes)
    if not pushes or not conf.push_enabled():
        return 0
    layer = live_layer()
    if layer is None:
        return 0
    try:
        async_to_sync(_send_all)(layer, pushes)
    except Exception:
        # A Redis hiccup must not fail a collection or a lifecycle step; the next sample follows.
        log.warning("live push of %d messages failed", len(pushes), exc_info=True)
        return 0
    return len(pushes)


def state_pushes(*, desktop_id: int, tenant_id: int, state: str, reason: str, at: datetime) -> list[Push]:
    """A desktop entered a state: tell its watchers and its tenant's admins."""
    payload = {"type": "state", "desktop": desktop_id, "state": state, "reason": reason, "at": epoch(at)}
    return [
        push(groups.desktop_group(desktop_id), groups.desktop_topic(desktop_id), payload),
        push(groups.tenant_group(tenant_id), groups.TENANT, payload),
    ]


def operation_pushes(
    *,
    operation_id: int,
    desktop_id: int,
    tenant_id: int,
    kind: str,
    status: str,
    step: str,
    error_code: str,
    error: str,
) -> list[Push]:
    """An operation moved a step or finished: tell the desktop's watchers and its tenant's admins."""
    payload = {
        "type": "operation",
        "desktop": desktop_id,
        "operation": operation_id,
        "kind": kind,
        "status": status,
        "step": step,
        "error_code": error_code,
        # The full text stays on the operation's API page; a live line only needs the gist.
        "error": error[:200],
    }
    return [
        push(groups.desktop_group(desktop_id), groups.desktop_topic(desktop_id), payload),
        push(groups.tenant_group(tenant_id), groups.TENANT, payload),
    ]
