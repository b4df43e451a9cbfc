"""Request budgets in Redis: one per API token, shared by the REST API and the MCP endpoint; one of failed token
attempts per client address, shared by both doors too. Other budgets (a tenant's DNS lookups, tenants.sso.domains)
spend through the same counter with their own numbers.

A token may make API_TOKEN_RATE_LIMIT requests per API_RATE_WINDOW_S-second window. An address may fail
API_TOKEN_FAILURE_LIMIT token attempts (unknown, revoked, expired, malformed) per API_TOKEN_FAILURE_WINDOW_S
seconds; once it has, every token request from it is refused before its token is looked up, until the window ends.
Both are counted in the default cache, which is Redis at REDIS_URL (so every web process shares the count; without
REDIS_URL there is one process, see quetzal/server.py). A fixed window with one atomic INCR per counted request: no
read-modify-write race between processes, one key per bucket and window that expires on its own. The token buckets
are named by the token's stored hash, never its id: a test database made anew reuses ids, and a counter of a token
that no longer exists must not be charged to a new one.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import BaseThrottle

from tenants.models import ApiToken

logger = logging.getLogger(__name__)

KEY_PREFIX = "qz:rate"
FAILED_PREFIX = "qz:failed-tokens"
# One IPv6 subscriber gets a /64 (RFC 6177): counting its addresses one by one would give it 2**64 budgets.
IPV6_PREFIX = 64


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
    """An address's bucket: an IPv4 address, or the /64 of an IPv6 one."""
    # No address known (a test client, a Unix socket): all such callers share one bucket, which fails safe.
    if not ip:
        return "ip:unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"ip:{ip}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.ip_network(f'{address}/{IPV6_PREFIX}', strict=False)}"
    return f"ip:{address}"


def _window(prefix: str, bucket: str, window: int) -> tuple[str, int]:
    """The current window's key for `bucket`, and the seconds until the window starts over."""
    now = time.time()
    index = int(now // window)
    return f"{prefix}:{window}:{index}:{bucket}", max(1, math.ceil((index + 1) * window - now))


def _count(key: str, window: int) -> int:
    """One more in `key`'s window, atomically: the count after it."""
    # Kept a little past the window's end, so a clock a second apart between processes still reads the same count.
    timeout = window + 2
    backend = caches["default"]  # `cache` is a proxy: isinstance() sees the proxy, not the backend
    if isinstance(backend, RedisCache):
        # INCR and EXPIRE in one transaction: every process's increment counts, and no key outlives its window.
        name = backend.make_key(key)
        pipe = backend._cache.get_client(name, write=True).pipeline(transaction=True)
        pipe.incr(name)
        pipe.expire(name, timeout)
        used, _expiry = pipe.execute()
        return int(used)
    # The in-memory cache of a single process (no REDIS_URL): its own lock makes add and incr atomic enough.
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between the two calls: this request opens the window again
        cache.add(key, 1, timeout=timeout)
        return 1


def spend(bucket: str, *, limit: int | None = None, window: int | None = None) -> Spent:
    """Count one request against `bucket` in the current window (the API's limit and window unless given)."""
    limit = limit or settings.API_TOKEN_RATE_LIMIT
    window = window or settings.API_RATE_WINDOW_S
    key, retry_after = _window(KEY_PREFIX, bucket, window)
    used = _count(key, window)
    return Spent(allowed=used <= limit, used=used, limit=limit, retry_after_s=retry_after)


def failed_tokens(ip: str | None) -> Spent:
    """The address's failed token attempts in this window, counting none: not `allowed` once it has used them all."""
    limit, window = settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S
    key, retry_after = _window(FAILED_PREFIX, address_bucket(ip), window)
    used = int(cache.get(key) or 0)
    return Spent(allowed=used < limit, used=used, limit=limit, retry_after_s=retry_after)


def count_failed_token(ip: str | None) -> Spent:
    """Count one failed token attempt against the address: `allowed` while it may make another."""
    limit, window = settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S
    bucket = address_bucket(ip)
    key, retry_after = _window(FAILED_PREFIX, bucket, window)
    used = _count(key, window)
    if used == limit:  # once per window and address, however many more it tries
        logger.warning("%s failed %d API token attempts: refused for %d s", bucket, used, retry_after)
    return Spent(allowed=used < limit, used=used, limit=limit, retry_after_s=retry_after)


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
