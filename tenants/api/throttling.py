"""One request budget per API token, shared by the REST API and the MCP endpoint; per address for failed attempts.
Other budgets (a tenant's DNS lookups, tenants.sso.domains) spend through the same counter with their own numbers.

API_TOKEN_RATE_LIMIT requests per API_RATE_WINDOW_S-second window, counted in the default cache, which is Redis at
REDIS_URL (so every web process shares the count; without REDIS_URL there is one process, see quetzal/server.py).
A fixed window with one atomic INCR per request: no read-modify-write race between processes, one key per bucket
and window that expires on its own. The buckets are named by the token's stored hash, never its id: a test database
made anew reuses ids, and a counter of a token that no longer exists must not be charged to a new one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from tenants.models import ApiToken

KEY_PREFIX = "qz:rate"


@dataclass(frozen=True)
class Spent:
    """What one request cost its bucket: whether it is within the limit, and when the window starts over."""

    allowed: bool
    used: int
    limit: int
    retry_after_s: int


def token_bucket(token: ApiToken) -> str:
    return f"token:{token.token_hash}"


def tenant_bucket(purpose: str, tenant_id: int) -> str:
    # The id names it: a count lives one window, and the database never gives a tenant's id to another tenant.
    return f"tenant:{tenant_id}:{purpose}"


def address_bucket(ip: str | None) -> str:
    # No address known (a test client, a Unix socket): all such callers share one bucket, which fails safe.
    return f"ip:{ip or 'unknown'}"


def spend(bucket: str, *, limit: int | None = None, window: int | None = None) -> Spent:
    """Count one request against `bucket` in the current window (the API's limit and window unless given)."""
    limit = limit or settings.API_TOKEN_RATE_LIMIT
    window = window or settings.API_RATE_WINDOW_S
    now = time.time()
    index = int(now // window)
    key = f"{KEY_PREFIX}:{window}:{index}:{bucket}"
    # Kept a little past the window's end, so a clock a second apart between processes still reads the same count.
    cache.add(key, 0, timeout=window + 2)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between the two calls: this request opens the window again
        cache.add(key, 1, timeout=window + 2)
        used = 1
    retry_after = max(1, math.ceil((index + 1) * window - now))
    return Spent(allowed=used <= limit, used=used, limit=limit, retry_after_s=retry_after)


class ApiTokenRateThrottle(BaseThrottle):
    """DRF's throttle for requests authenticated by an API token; sessions (people at a browser) pass."""

    def allow_request(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        self.spent = spend(token_bucket(token))
        return self.spent.allowed

    def wait(self) -> float | None:
        spent = getattr(self, "spent", None)
        return spent.retry_after_s if spent is not None else None
