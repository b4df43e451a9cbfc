"""Services hand work to Celery by task name, only once their transaction commits."""

from __future__ import annotations

from celery import current_app
from celery.signals import task_prerun

from desktops import dispatch
from desktops.choices import DesktopState, OperationStatus
from desktops.models import Desktop, Operation, Pool
from desktops.services.pools import save_pool
from desktops.services.requests import request_create
from quetzal.celery import app as celery_app


def test_it_names_only_registered_tasks():
    # A misspelt name would go to the broker and never be run by anyone.
    assert set(dispatch.TASK_NAMES) <= set(current_app.tasks)


def test_it_sends_nothing_before_the_commit_then_runs_the_operation(
    alice, host, template, django_capture_on_commit_callbacks
):
    ran_as: list[str] = []

    def note(task_id=None, **_kwargs):
        ran_as.append(task_id)

    task_prerun.connect(note, weak=False)
    celery_app.conf.task_always_eager = True
    try:
        # Given a create request inside a transaction that has not committed yet
        with django_capture_on_commit_callbacks() as pending:
            desktop, operation = request_create(tenant=alice.tenant, user=alice.member, template=template)
            # Then nothing ran yet: the worker would not find the row
            assert Operation.objects.get(pk=operation.pk).status == OperationStatus.QUEUED
        assert len(pending) == 1
        # When the transaction commits
        pending[0]()
    finally:
        celery_app.conf.task_always_eager = False
        task_prerun.disconnect(note)
    # Then the named task ran, under the Celery id the operation row names
    operation.refresh_from_db()
    assert operation.status == OperationStatus.SUCCEEDED
    assert ran_as == [operation.celery_task_id] and len(operation.celery_task_id) == 36
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.RUNNING


def test_it_refills_a_saved_pool_by_name(alice, host, template, work):
    # When an admin saves a pool that wants one warm desktop
    with work():
        pool = save_pool(tenant=alice.tenant, actor=alice.admin, values={"template": template, "min_ready": 1})
    # Then the refill task (sent by name on commit) made it
    assert Pool.objects.get(pk=pool.pk).desktops.filter(state=DesktopState.RUNNING).count() == 1
