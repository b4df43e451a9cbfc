"""The live layer: Redis pub/sub beside a Redis default layer, pipelined pushes, and a safe fallback."""

from __future__ import annotations

import pytest
from django.conf import settings

from desktops.metrics import live
from desktops.metrics.layer import live_layer
from desktops.metrics.tests.helpers import capture
from tests.services import port_open, require

IN_MEMORY = {"BACKEND": "channels.layers.InMemoryChannelLayer"}


@pytest.fixture
def redis_layer():
    require(settings.REDIS_URL is not None and port_open("127.0.0.1", 6379), "Redis (REDIS_URL)")
    from channels_redis.pubsub import RedisPubSubChannelLayer

    layer = live_layer()
    assert isinstance(layer, RedisPubSubChannelLayer)
    return layer


def pushes() -> list[live.Push]:
    return [
        live.push("qz.live.test.one", "desktop:1", {"type": "state", "n": 1}),
        live.push("qz.live.test.two", "tenant", {"type": "state", "n": 2}),
        live.push("qz.live.test.one", "desktop:1", {"type": "state", "n": 3}),
    ]


def test_it_pipelines_pushes_over_redis_pubsub_in_order(redis_layer):
    got = capture({"one": "qz.live.test.one", "two": "qz.live.test.two"}, lambda: live.publish(pushes()))
    assert [m["n"] for m in got["one"]] == [1, 3] and [m["n"] for m in got["two"]] == [2]
    assert got["two"][0]["topic"] == "tenant"


def test_it_falls_back_to_group_send_when_channels_redis_internals_change(redis_layer, monkeypatch):
    from channels_redis.pubsub import RedisPubSubChannelLayer

    class Changed(RedisPubSubChannelLayer):
        def _get_layer(self):
            return object()  # none of the private helpers the pipelined path uses

    # The pipelined path steps aside before sending anything...
    assert live._pubsub_batches(Changed(), pushes()) is None
    # ...and one group_send per push delivers the same messages in the same order
    monkeypatch.setattr(live, "_pubsub_batches", lambda layer, items: None)
    got = capture({"one": "qz.live.test.one"}, lambda: live.publish(pushes()))
    assert [m["n"] for m in got["one"]] == [1, 3]


def test_it_uses_a_configured_live_layer_first(settings):
    settings.CHANNEL_LAYERS = {"default": IN_MEMORY, "live": IN_MEMORY}
    from channels.layers import get_channel_layer

    assert live_layer() is get_channel_layer("live") and live_layer() is not get_channel_layer()


def test_it_shares_an_in_memory_default_layer(settings):
    settings.CHANNEL_LAYERS = {"default": IN_MEMORY}
    from channels.layers import get_channel_layer

    assert live_layer() is get_channel_layer()
    got = capture({"one": "qz.live.test.one"}, lambda: live.publish(pushes()))
    assert [m["n"] for m in got["one"]] == [1, 3]


def test_it_keeps_installations_on_other_redis_databases_apart():
    from desktops.metrics.layer import _database

    # Pub/sub channel names carry the database number, as keys are kept apart by it
    assert _database(["redis://127.0.0.1:6379/7"]) == 7
    assert _database([{"address": "redis://cache:6379/3"}]) == 3
    assert _database([{"address": "redis://cache:6379", "db": 2}]) == 2
    assert _database(["redis://127.0.0.1:6379"]) == 0 and _database(None) == 0
