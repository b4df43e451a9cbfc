"""Settings for the parallel part of `make test` (pytest-xdist): the project's settings, with each worker on its own
Redis database.

pytest-django gives every worker its own test database (test_quetzal_gw0, …), but the cache, the channel layer and
Celery's broker would share one Redis database, and each test empties the cache's keys: a worker would wipe the
other's rate limits and locks mid-test. The worker's database is chosen here, before the settings read REDIS_URL,
and written back to the environment so the servers and workers a test starts use the same one.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = 16  # Redis' default `databases`
MARK = "QUETZAL_TEST_REDIS_FOR"


def _worker_index() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, …
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else None


def _redis_for_worker(url: str, index: int) -> str:
    """The same server, a database counted from the end so the serial run's own (REDIS_URL's) stays untouched."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{REDIS_DATABASES - 1 - index}"))


_index = _worker_index()
# Once per worker: a server a test starts imports these settings again with the rewritten URL already in place.
if _index is not None and os.environ.get("REDIS_URL") and os.environ.get(MARK) != str(_index):
    os.environ["REDIS_URL"] = _redis_for_worker(os.environ["REDIS_URL"], _index)
    os.environ[MARK] = str(_index)

from quetzal.settings.base import *  # noqa: E402, F403
