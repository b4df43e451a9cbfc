"""Settings of the browser tests' server and worker: their own Celery queue and channel-layer prefix.

Other test runs may share the Redis database; without these, one run's worker could take another's
operations and one run's live pushes could reach another's browser.
"""

from __future__ import annotations

import os

from quetzal.settings.base import *  # noqa: F403
from quetzal.settings.base import CELERY_TASK_DEFAULT_QUEUE, CHANNEL_LAYERS

CELERY_TASK_DEFAULT_QUEUE = os.environ.get("QUETZAL_TEST_QUEUE", CELERY_TASK_DEFAULT_QUEUE)
if "CONFIG" in CHANNEL_LAYERS["default"]:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = os.environ.get("QUETZAL_TEST_CHANNEL_PREFIX", "asgi")
