"""A worker finds every task the beat schedule names by autodiscovery alone (each app's tasks module)."""

from __future__ import annotations

import json
import subprocess
import sys

from django.conf import settings

# A fresh interpreter: in the test process some other test may have imported a tasks module already.
WORKER_VIEW = """
import json, django
django.setup()
from quetzal.celery import app
app.loader.import_default_modules()
print(json.dumps(sorted(app.tasks)))
"""


def test_it_discovers_every_task_the_beat_schedule_names():
    found = subprocess.run([sys.executable, "-c", WORKER_VIEW], capture_output=True, text=True, check=True, timeout=120)
    registered = set(json.loads(found.stdout.strip().splitlines()[-1]))
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"desktops.console.tasks.cleanup", "desktops.metrics.tasks.collect_all"} <= scheduled
    assert scheduled - registered == set()
