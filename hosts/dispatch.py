"""How the hosts services hand work to Celery: after commit, by task name, so services never import tasks."""

# Tasks import services; if services imported tasks back, the two would form a cycle. Sending by
# name keeps the direction one way: this module knows the names, never the task functions.

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from celery.result import AsyncResult
from django.db import transaction

from quetzal.celery import app

log = logging.getLogger(__name__)

COPY_IMAGE_TO_HOST = "hosts.tasks.copy_image_to_host"
COPY_IMAGES_TO_HOST = "hosts.tasks.copy_images_to_host"
HEARTBEAT_HOST = "hosts.tasks.heartbeat_host"


def on_commit(task_name: str, *args: Any, **options: Any) -> None:
    """Queue the named task once the current transaction commits (at once outside a transaction).

    robust: a broker outage is logged and never fails the work that has committed; what was not
    queued stays visible (a pending copy, a stale heartbeat) and is queued again by its next trigger.
    """
    transaction.on_commit(partial(send, task_name, *args, **options), robust=True)


def send(task_name: str, *args: Any, **options: Any) -> AsyncResult:
    """Queue the named task now, with Celery's apply_async options (expires, countdown, queue...)."""
    if app.conf.task_always_eager:
        # send_task ignores eager mode (tests, one-process runs): run the registered task in-process,
        # importing the apps' task modules as a worker does if nothing has imported them yet.
        if task_name not in app.tasks:
            app.loader.import_default_modules()
        return app.tasks[task_name].apply_async(args, **options)
    return app.send_task(task_name, args=args, **options)
