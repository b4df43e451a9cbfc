"""Settings of the metrics package, read with defaults and validated on use."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _positive(name: str, default: float) -> float:
    value = getattr(settings, name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number, got {value!r}")
    return value


def interval_s() -> float:
    """Seconds between two collections of a host (the beat schedule should match)."""
    return _positive("METRICS_INTERVAL_S", 5)


def raw_retention_h() -> float:
    """Hours raw samples are kept at least (they go a whole UTC day at a time: see rollups.raw_cutoff)."""
    return _positive("METRICS_RAW_RETENTION_H", 24)


def minute_retention_d() -> float:
    """Days per-minute rollups are kept."""
    return _positive("METRICS_MINUTE_RETENTION_D", 7)


def hour_retention_d() -> float:
    """Days per-hour rollups are kept."""
    return _positive("METRICS_HOUR_RETENTION_D", 90)


def push_enabled() -> bool:
    """Whether samples and lifecycle events are pushed to the channel layer."""
    value = getattr(settings, "METRICS_PUSH", True)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"METRICS_PUSH must be True or False, got {value!r}")
    return value


def token() -> str:
    """The bearer token that lets a Prometheus server scrape /metrics ('' disables token access)."""
    value = getattr(settings, "METRICS_TOKEN", "") or ""
    if not isinstance(value, str):
        raise ImproperlyConfigured("METRICS_TOKEN must be a string")
    if value and len(value) < 16:
        raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long")
    return value
