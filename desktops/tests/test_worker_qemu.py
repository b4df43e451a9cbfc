"""Real Celery workers with Redis carry out operations on a real libvirtd + QEMU, and survive SIGKILL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from desktops.choices import TRANSITIONAL_STATES, DesktopState, OperationStatus
from desktops.models import Desktop, Operation
from desktops.services import spec
from desktops.services.reconcile import reconcile_host
from desktops.services.requests import request_action, request_create
from hosts.hypervisor import get_hypervisor
from tests.fixtures import api_client
from tests.waiting import wait_until

pytestmark = [pytest.mark.qemu, pytest.mark.worker]


def _cleanup(desktop: Desktop, host) -> None:
    """Remove whatever a test left of its desktop on the real host."""
    from desktops.services.execution import remove_from_host

    remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)


def test_it_starts_a_desktop_through_a_real_worker(alice, demo_template, qemu_host, start_worker):
    start_worker()
    client = api_client(alice.member, alice.tenant)
    # Given the script call from the original plan
    response = client.post("/api/desktop/start", {"os_type": "linux"}, format="json")
    assert response.status_code == 202
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    try:
        # Then the worker process takes it to running, and status says where to open the console
        wait_until(lambda: Desktop.objects.get(pk=desktop.pk).state == DesktopState.RUNNING, 120)
        status = client.get("/api/desktop/status").json()["desktops"]
        assert status[0]["state"] == "running" and status[0]["console_url"] == f"/desktops/{desktop.pk}/console/"
        operation = Operation.objects.get(desktop=desktop)
        assert operation.status == OperationStatus.SUCCEEDED and operation.celery_task_id
        hv = get_hypervisor(qemu_host.uri)
        assert hv.state(Desktop.objects.get(pk=desktop.pk).domain_name) == "running"
    finally:
        _cleanup(desktop, qemu_host)


def _assert_consistent(desktop: Desktop, host) -> None:
    """Exactly one domain per live desktop, no orphan volumes, nothing mid-transition."""
    desktop.refresh_from_db()
    hv = get_hypervisor(host.uri)
    domains = [d for d in hv.list_domains() if d.desktop_id == desktop.pk]
    assert desktop.state not in TRANSITIONAL_STATES, desktop.state
    if desktop.state in (DesktopState.DELETED, DesktopState.ERROR):
        assert domains == []
        assert not hv.volume_exists(host.storage_pool, spec.disk_volume_name(desktop))
        assert not hv.volume_exists(host.storage_pool, spec.seed_volume_name(desktop))
    else:
        assert len(domains) == 1
    for operation in Operation.objects.filter(desktop=desktop):
        assert operation.status in (OperationStatus.SUCCEEDED, OperationStatus.FAILED)
        if operation.status == OperationStatus.FAILED:
            assert operation.error, "a failed operation must say why"


def _kill_mid_operation(operation: Operation, worker) -> None:
    """SIGKILL the worker as soon as it has started the operation."""
    wait_until(lambda: Operation.objects.get(pk=operation.pk).status != OperationStatus.QUEUED, 60, 0.005)
    worker.kill()
    # The kill must land mid-way, or the test proves nothing about recovery.
    assert Operation.objects.get(pk=operation.pk).status == OperationStatus.RUNNING


def _reconcile_after_timeout(host) -> None:
    later = timezone.now() + timedelta(seconds=settings.OPERATION_STUCK_AFTER_S + 1)
    reconcile_host(host.pk, now=later)


@pytest.mark.parametrize("kind", ["create", "start", "delete"])
def test_it_recovers_from_a_worker_killed_mid_operation(
    alice,
    demo_template,
    qemu_host,
    start_worker,
    kind,
):
    desktop = None
    try:
        if kind == "create":
            worker = start_worker()
            desktop, operation = request_create(tenant=alice.tenant, user=alice.member, template=demo_template)
        else:
            # Given a desktop made and settled by a first worker
            first = start_worker()
            desktop, _ = request_create(
                tenant=alice.tenant, user=alice.member, template=demo_template, start=(kind == "delete")
            )
            settled = DesktopState.RUNNING if kind == "delete" else DesktopState.STOPPED
            wait_until(
                lambda: (
                    Desktop.objects.get(pk=desktop.pk).state == settled
                    and not Operation.objects.in_flight().filter(desktop=desktop).exists()
                ),
                120,
            )
            first.stop()
            worker = start_worker()
            operation = request_action(desktop=desktop, kind=kind, actor=alice.member)
        # When the worker is killed in the middle of the operation
        _kill_mid_operation(operation, worker)
        # And a new worker starts and one reconcile pass runs
        start_worker()
        _reconcile_after_timeout(qemu_host)
        # Then everything is consistent and the operation finished or failed with a reason
        _assert_consistent(desktop, qemu_host)
    finally:
        if desktop is not None:
            _cleanup(desktop, qemu_host)
