"""hosts.dispatch: services queue tasks by name, after commit; every name is a real task."""

from __future__ import annotations

import pytest
from django.db import transaction

from hosts import dispatch, tasks
from hosts.models import Host
from hosts.services.hosts import register_host
from hosts.tests.libvirt_hosts import SMALL_URI
from quetzal.celery import app

pytestmark = pytest.mark.django_db

# Read from the module, so a name added later is checked too.
TASK_NAMES = sorted(value for key, value in vars(dispatch).items() if key.isupper() and isinstance(value, str))


@pytest.mark.parametrize("name", TASK_NAMES)
def test_it_names_only_tasks_the_hosts_app_registers(name):
    # given the hosts tasks module, when a dispatch name is looked up, then it is one of its tasks
    assert name in app.tasks
    assert app.tasks[name].__module__ == tasks.__name__


def test_it_sends_nothing_before_the_transaction_commits(django_capture_on_commit_callbacks, sent_tasks):
    # given a transaction that queues a heartbeat
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        dispatch.on_commit(dispatch.HEARTBEAT_HOST, 7, expires=15)
        # then inside it nothing has been sent
        assert sent_tasks == []
    # and after the commit the named task went out with its arguments
    assert sent_tasks == [(dispatch.HEARTBEAT_HOST, (7,))]


def test_it_runs_the_named_task_in_process_when_tasks_are_eager(django_capture_on_commit_callbacks):
    # given eager tasks (as one-process runs and tests use) and a host whose facts went stale
    host = register_host(SMALL_URI, name="small")
    Host.objects.filter(pk=host.pk).update(cpus=1)
    app.conf.task_always_eager = True
    try:
        # when a heartbeat is dispatched and the transaction commits
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.on_commit(dispatch.HEARTBEAT_HOST, host.pk)
    finally:
        app.conf.task_always_eager = False
    # then the task ran here and refreshed the host from libvirt
    host.refresh_from_db()
    assert host.cpus == 2
