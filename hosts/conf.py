"""The hosts app's settings, read with defaults and validated on use."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from hosts.choices import SchedulerStrategy


def _positive(name: str, default: float) -> float:
    value = getattr(settings, name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number, got {value!r}")
    return value


def host_down_after_s() -> float:
    """Seconds of silence after which a host counts as down (and gets no new desktops)."""
    return _positive("HOST_DOWN_AFTER_S", 40)


def heartbeat_interval_s() -> float:
    """Seconds between two heartbeats of a host (the beat schedule should match)."""
    return _positive("HOST_HEARTBEAT_INTERVAL_S", 15)


def image_copy_stale_after_s() -> float:
    """Seconds after which a copy still marked `copying` is presumed dead and may be retried."""
    return _positive("IMAGE_COPY_STALE_AFTER_S", 3600)


def scheduler_strategy() -> SchedulerStrategy:
    """spread (least loaded first, the default) or pack (fill hosts before using the next)."""
    value = getattr(settings, "SCHEDULER_STRATEGY", SchedulerStrategy.SPREAD)
    try:
        return SchedulerStrategy(value)
    except ValueError:
        raise ImproperlyConfigured(f"SCHEDULER_STRATEGY must be spread or pack, got {value!r}") from None


def scheduler_candidates() -> int:
    """How many best-weighed hosts one placement attempt tries to claim, in order."""
    return int(_positive("SCHEDULER_CANDIDATES", 8))


def pki_dir() -> Path:
    """Where Quetzal keeps the CA, certificates and SSH key it uses to reach hosts."""
    value = getattr(settings, "HOST_PKI_DIR", None) or Path(settings.VAR_DIR) / "pki"
    return Path(value)


def enrol_min_free_disk_gib() -> float:
    """Free space a host's storage pool needs before it is enrolled."""
    return _positive("HOST_ENROL_MIN_FREE_DISK_GIB", 5)


def enrol_min_free_memory_mib() -> float:
    """Free RAM a host needs (beyond its reserve) before it is enrolled."""
    return _positive("HOST_ENROL_MIN_FREE_MEMORY_MIB", 256)


def scheduler_claim() -> str:
    """statement (rank, lock, count and record in one round trip; PostgreSQL) or steps (one query each)."""
    value = getattr(settings, "SCHEDULER_CLAIM", "statement")
    if value not in ("statement", "steps"):
        raise ImproperlyConfigured(f"SCHEDULER_CLAIM must be statement or steps, got {value!r}")
    return value
