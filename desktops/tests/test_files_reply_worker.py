"""The file manager's round trip to a real Celery worker of the home's host, through Redis.

The web side waits on a one-off Redis list for the worker's answer (desktops.dispatch.files_call). A first use
makes the person's home disk and a download can be large, so an answer may take many seconds: the wait is bounded
by HOME_FILES_TIMEOUT_S only, never by the Redis client's own socket timeout (5 s in redis-py 8, which turned the
first visit to the Files page into "did not answer in time").
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid

import pytest

from desktops import dispatch
from quetzal.errors import ServiceError
from tests.processes import child_env, require_shared_services, start_celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Longer than redis-py's default socket timeout.
SLOW_S = 8


@pytest.fixture
def files_host(tmp_path, settings):
    """A worker of its own host's files queue: (the host's name, the worker process)."""
    require_shared_services("the worker")
    settings.HOME_FILES_HOST_QUEUES = True
    name = f"files-{uuid.uuid4().hex[:8]}"
    options = ["-P", "threads", "-c", "1", "-Q", f"files.{name}", "-n", f"{name}@%h"]
    worker = start_celery_worker(env=child_env(), log_path=tmp_path / "worker.log", options=options)
    yield name, worker
    resume(worker)
    worker.stop()


def slow_for(worker, seconds: float) -> None:
    """The host answers late: its worker is paused now and goes on after `seconds`."""
    os.killpg(worker.process.pid, signal.SIGSTOP)
    threading.Timer(seconds, resume, (worker,)).start()


def resume(worker) -> None:
    with contextlib.suppress(ProcessLookupError):  # the test may have ended, and its worker with it
        os.killpg(worker.process.pid, signal.SIGCONT)


def test_it_waits_for_a_host_that_answers_later_than_the_redis_clients_own_timeout(files_host, settings):
    name, worker = files_host
    settings.HOME_FILES_TIMEOUT_S = 60
    slow_for(worker, SLOW_S)
    # A home that does not exist: the worker's refusal is its answer, and proves the answer came back
    with pytest.raises(ServiceError) as refused:
        dispatch.files_call(0, "list", {"path": ""}, host_name=name)
    assert (refused.value.code, refused.value.status) == ("not_found", 404)


def test_it_gives_up_after_the_files_timeout_with_a_clear_error(files_host, settings):
    name, worker = files_host
    settings.HOME_FILES_TIMEOUT_S = 5
    slow_for(worker, SLOW_S)
    with pytest.raises(ServiceError) as refused:
        dispatch.files_call(0, "list", {"path": ""}, host_name=name)
    assert (refused.value.code, refused.value.status) == ("files_timeout", 504)
    assert refused.value.detail == "The host keeping your files did not answer in time."
