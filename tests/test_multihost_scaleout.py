"""Scale-out and failure on three real libvirtd hosts (namespaces): spread, consoles, a lost host, live migration.

One test walks the whole story, because every guest boot costs real CPU under software emulation:
four tiny demo desktops and one replacement, then one live migration. Operations run through
Celery's own task code in eager mode (no worker process; tests/test_worker_* cover workers).
"""

from __future__ import annotations

import io
import time

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command

from billing.models import UsageInterval
from desktops.choices import DesktopKind, DesktopState, OperationKind, OperationStatus
from desktops.console.tests.fixtures import GREETING, browser, communicator
from desktops.models import Desktop, DesktopTemplate, Operation, Pool
from desktops.services import host_failure, pools
from desktops.services.reconcile import reconcile_host
from desktops.services.requests import request_create
from hosts.hypervisor import get_hypervisor
from hosts.hypervisor.libvirt_driver import forget_hypervisors
from hosts.models import Host
from hosts.services import health, images
from hosts.services.enrolment import enrol_host
from tests.fixtures import api_client
from tests.namespace_hosts import namespace_hosts  # noqa: F401  (fixture)
from tests.waiting import wait_until

pytestmark = [pytest.mark.multihost, pytest.mark.qemu, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def eager_tasks():
    """Tasks sent on commit run in-process, through Celery's task wrappers."""
    from quetzal.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def _domains_by_desktop(hosts: list[Host]) -> dict[int, list[tuple[str, str]]]:
    """Every Quetzal domain on every host: desktop id -> [(host name, state)]."""
    found: dict[int, list[tuple[str, str]]] = {}
    for host in hosts:
        for domain in get_hypervisor(host.uri).list_domains():
            found.setdefault(domain.desktop_id, []).append((host.name, str(domain.state)))
    return found


def _console_greeting(desktop: Desktop, who) -> bytes:
    """Open the console through the proxy (the whole ASGI stack) and return what the VM's VNC says first."""

    async def run() -> bytes:
        ticket = await _adb(who.ticket)(desktop)
        client = communicator(desktop.pk, ticket=ticket, headers=who.headers())
        connected, _ = await client.connect(timeout=10)
        assert connected
        greeting = await client.receive_from(timeout=10)
        await client.disconnect()
        return greeting

    return async_to_sync(run)()


def _adb(fn):
    from channels.db import database_sync_to_async

    return database_sync_to_async(fn)


def _heartbeat_all(hosts: list[Host]) -> None:
    for host in hosts:
        health.heartbeat(host_id=host.pk)
    health.mark_stale_hosts_down()


def test_it_spreads_survives_a_lost_host_and_moves_a_running_desktop(
    namespace_hosts,  # noqa: F811
    alice,
    bob,
    charlie,
    settings,
    tmp_path,
    eager_tasks,
):
    settings.HOST_PKI_DIR = str(tmp_path / "pki")
    settings.BILLING_ENABLED = True
    # Short, so the lost host is noticed quickly; long enough that a guest's boot does not age the others out.
    settings.HOST_DOWN_AFTER_S = 15
    settings.DESKTOP_SERIAL_LOG_DIR = "/var/log/libvirt/qemu"
    forget_hypervisors()
    # Given the three namespace hosts enrolled, and the demo image copied to each
    hosts = [enrol_host(h.uri, virt_type="qemu", reserved_memory_mib=256)[0] for h in namespace_hosts]
    call_command("build_demo_image", "--no-copy", stdout=io.StringIO())
    template = DesktopTemplate.objects.get(name="Demo Linux")
    for host in hosts:
        images.copy_image_to_host(image=template.image, host=host)
    by_address = {h.address: h for h in namespace_hosts}
    try:
        # When three people launch a desktop each
        personal = []
        for world in (alice, bob, charlie):
            _heartbeat_all(hosts)  # the beat runs every few seconds in production
            personal.append(request_create(tenant=world.tenant, user=world.member, template=template)[0])
        # Then the spread weigher puts one on each host, and each runs there
        personal = [Desktop.objects.get(pk=d.pk) for d in personal]
        assert [d.state for d in personal] == [DesktopState.RUNNING] * 3, [d.status_reason for d in personal]
        assert sorted(d.host_id for d in personal) == sorted(h.pk for h in hosts)
        # And each VM's VNC listens on its own host's management address only
        for desktop in personal:
            address = get_hypervisor(desktop.host.uri).console_address(desktop.domain_name)
            assert address.host == desktop.host.console_address in by_address
        # And a console opens through the proxy to the desktop on each host
        for desktop, world in zip(personal, (alice, bob, charlie), strict=True):
            assert _console_greeting(desktop, browser(world.member, world.tenant)) == GREETING

        # Given a warm pool of one desktop; it lands on the lowest host id among equally loaded ones
        Pool.objects.create(tenant=charlie.tenant, template=template, name="Warm", min_ready=1, max_size=5)
        _heartbeat_all(hosts)
        pools.refill_all()
        pooled = Desktop.objects.get(kind=DesktopKind.POOLED)
        assert pooled.state == DesktopState.RUNNING
        lost = pooled.host
        lost_ns = by_address[lost.console_address]
        stranded = next(d for d in personal if d.host_id == lost.pk)
        others = [h for h in hosts if h.pk != lost.pk]

        # When that host's libvirtd dies (its guests keep running, as on a real crash of the daemon)
        lost_ns.kill_libvirtd()
        killed_at = time.monotonic()
        wait_until(lambda: (_heartbeat_all(hosts), Host.objects.get(pk=lost.pk).state == "down")[1], 60, 1)
        # Then it is marked down within 60 s
        assert time.monotonic() - killed_at < 60
        # And the pooled desktop is written off and replaced, running on another host
        assert Desktop.objects.get(pk=pooled.pk).status_reason == host_failure.POOLED_REPLACED
        replacement = Desktop.objects.exclude(pk=pooled.pk).get(kind=DesktopKind.POOLED)
        assert replacement.state == DesktopState.RUNNING and replacement.host_id in {h.pk for h in others}
        # And the person whose desktop is on it sees "host unavailable" in the API and the portal
        owner = stranded.user
        client = api_client(owner, stranded.tenant)
        body = client.get(f"/api/v1/desktops/{stranded.pk}/").json()
        assert body["host_available"] is False and body["status_reason"].startswith("Host unavailable")
        page = client.get("/")
        assert f'data-testid="host-down-{stranded.pk}"'.encode() in page.content

        # When the host comes back
        lost_ns.start_libvirtd()
        forget_hypervisors()
        _heartbeat_all(hosts)
        assert Host.objects.get(pk=lost.pk).state == "up"
        # Then the written-off pooled desktop is removed from it, the person's notice is cleared,
        # and reconcile on every host finds no orphan, no drift and no duplicate
        assert Desktop.objects.get(pk=pooled.pk).state == DesktopState.DELETED
        assert Desktop.objects.get(pk=stranded.pk).status_reason == ""
        assert client.get(f"/api/v1/desktops/{stranded.pk}/").json()["host_available"] is True
        for host in hosts:
            report = reconcile_host(host.pk)
            assert report is not None
            assert (report.orphans_pending, report.orphans_destroyed, report.repaired) == ([], [], {})
        domains = _domains_by_desktop(hosts)
        alive = Desktop.objects.exclude(state=DesktopState.DELETED)
        assert sorted(domains) == sorted(alive.values_list("pk", flat=True))
        assert all(len(places) == 1 for places in domains.values()), domains

        # Given a running desktop with its usage being metered
        moving = Desktop.objects.get(pk=personal[1].pk)
        source = moving.host
        assert UsageInterval.objects.open().filter(desktop=moving).count() == 1
        intervals_before = UsageInterval.objects.filter(desktop=moving).count()
        world = bob if moving.tenant_id == bob.tenant.pk else alice if moving.tenant_id == alice.tenant.pk else charlie
        # When an operator moves it ("move this desktop")
        _heartbeat_all(hosts)
        out = io.StringIO()
        call_command("move_desktop", str(moving.pk), stdout=out)
        operation = Operation.objects.filter(desktop=moving, kind=OperationKind.MIGRATE).get()
        # Then it runs on another host, defined there only, never stopped on the way
        assert operation.status == OperationStatus.SUCCEEDED, operation.error
        moving.refresh_from_db()
        assert moving.host_id != source.pk and moving.state == DesktopState.RUNNING
        assert _domains_by_desktop(hosts)[moving.pk] == [(moving.host.name, "running")]
        assert not get_hypervisor(source.uri).volume_exists(source.storage_pool, f"{moving.domain_name}.qcow2")
        assert operation.params["from_host"] == source.name and operation.params["to_host"] == moving.host.name
        assert operation.params["downtime_ms"] >= 0
        # And its VNC moved to the new host's address, and the console reconnects there through the proxy
        address = get_hypervisor(moving.host.uri).console_address(moving.domain_name)
        assert address.host == moving.host.console_address
        assert _console_greeting(moving, browser(world.member, world.tenant)) == GREETING
        # And billing kept the one open interval: the move is neither a stop nor a second start
        assert UsageInterval.objects.open().filter(desktop=moving).count() == 1
        assert UsageInterval.objects.filter(desktop=moving).count() == intervals_before
        # And the scheduler's counters moved with it
        counters = {h.pk: h.allocated_memory_mib for h in Host.objects.all()}
        expected = {h.pk: 0 for h in hosts}
        for desktop in Desktop.objects.exclude(state=DesktopState.DELETED):
            expected[desktop.host_id] += desktop.memory_mib
        assert counters == expected
    finally:
        _cleanup(hosts)


def _cleanup(hosts: list[Host]) -> None:
    """Remove every domain and volume the test made on the namespace hosts (they outlive one test)."""
    for host in hosts:
        hv = get_hypervisor(host.uri)
        try:
            for domain in hv.list_domains():
                if str(domain.state) != "shutoff":
                    hv.destroy(domain.name)
                hv.undefine(domain.name)
        except Exception:  # a host the test left down: the harness's teardown removes it anyway
            continue
