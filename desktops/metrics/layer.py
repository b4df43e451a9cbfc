"""The channel layer of live topics: Redis pub/sub beside a Redis default layer, else the default."""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.layers import get_channel_layer
from django.conf import settings

LIVE_ALIAS = "live"
_REDIS_LAYER = "channels_redis.core.RedisChannelLayer"
_derived: dict[str, object] = {}


def live_layer():
    """The layer live pushes travel on; CHANNEL_LAYERS["live"] wins when it is configured."""
    configured = getattr(settings, "CHANNEL_LAYERS", {})
    if LIVE_ALIAS in configured:
        return get_channel_layer(LIVE_ALIAS)
    default = configured.get("default", {})
    if default.get("BACKEND") != _REDIS_LAYER:
        return get_channel_layer()
    # The default Redis layer makes every consumer take turns at a lock to read its own list, work
    # that grows with the sockets a process holds; live figures need no queue nor persistence, and
    # pub/sub delivers each one to a process once for all its sockets. Same Redis, own prefix.
    hosts = default.get("CONFIG", {}).get("hosts")
    key = repr(hosts)
    if key not in _derived:
        from channels_redis.pubsub import RedisPubSubChannelLayer

        _derived.clear()
        _derived[key] = RedisPubSubChannelLayer(hosts=hosts, prefix=f"quetzal-live-db{_database(hosts)}-")
    return _derived[key]


def _database(hosts) -> int:
    """The Redis database number of the first host (0 when unsaid)."""
    # Pub/sub channels are server-wide, not per database: without the number in their names, two
    # installations sharing a Redis server on different databases would hear each other's events.
    first = hosts[0] if hosts else None
    if isinstance(first, dict):
        if "db" in first:
            return int(first["db"])
        first = first.get("address")
    if isinstance(first, str):
        path = urlsplit(first).path.strip("/")
        return int(path) if path.isdigit() else 0
    return 0
