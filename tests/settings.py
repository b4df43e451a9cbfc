"""Settings for the parallel part of `make test` (pytest-xdist): the project's settings, with each worker on its own
Redis database.

pytest-django gives every worker its own test database (test_quetzal_gw0, …), but the cache, the channel layer and
Celery's broker would share one Redis database, and each test empties the cache's keys: a worker would wipe the
other's rate limits and locks mid-test. The worker's database is chosen here, before the settings read REDIS_URL,
and written back to the environment so the servers and workers a test starts use the same one.

The serial part of `make test` runs as two lanes at once: the tests on the real hypervisor (QEMU guests, namespaced
hosts: they share qemu:///system and the bridges) in one, the browser, worker and fuzz tests on libvirt's test driver
in the other (QUETZAL_TEST_LANE=light). The light lane gets its own Redis database and test database here, as a
worker does, so the two lanes' Celery workers, caches and flushes never meet.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = 16  # Redis' default `databases`
MARK = "QUETZAL_TEST_REDIS_FOR"
LANE = "QUETZAL_TEST_LANE"
LANE_INDEX = 4  # after the at most four xdist workers (--maxprocesses 4): Redis database 11


def _worker_index() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, …
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:])
    return LANE_INDEX if os.environ.get(LANE) == "light" else None


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
from quetzal.settings.base import DATABASES  # noqa: E402

if os.environ.get(LANE) == "light" and not os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-django names a worker's test database itself (test_quetzal_gw0); the light lane's is named here.
    _default = DATABASES["default"]
    if _default["ENGINE"].endswith("postgresql"):
        _default.setdefault("TEST", {})["NAME"] = f"test_{_default['NAME']}_light"
