"""Reconcile repairs each kind of drift between the database and libvirt."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from desktops.choices import DesktopState, OperationStatus
from desktops.models import Desktop, Operation, OrphanSighting
from desktops.services import spec
from desktops.services.reconcile import reconcile_host
from desktops.tests.factories import DesktopFactory, OperationFactory
from hosts.hypervisor import DiskSpec, DomainSpec, get_hypervisor
from hosts.models import Allocation
from hosts.services.installation import installation_id
from tests.fixtures import api_client


def _running(alice, template, work) -> Desktop:
    client = api_client(alice.member, alice.tenant)
    with work():
        desktop_id = client.post("/api/desktop/start", {"template": template.pk}, format="json").json()["desktop"]["id"]
    return Desktop.objects.get(pk=desktop_id)


def test_it_stops_a_domain_that_runs_but_should_not(alice, host, template, work):
    # Given a desktop recorded as stopped whose VM is running on the host
    desktop = _running(alice, template, work)
    Desktop.objects.filter(pk=desktop.pk).update(state=DesktopState.STOPPED)
    # When reconcile runs
    report = reconcile_host(host.pk)
    # Then the VM is powered off and the record stays stopped
    assert report.stopped_domains == [desktop.domain_name]
    assert get_hypervisor(host.uri).state(desktop.domain_name) == "shutoff"
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.STOPPED


def test_it_records_a_shutdown_from_inside_the_guest(alice, host, template, work):
    desktop = _running(alice, template, work)
    get_hypervisor(host.uri).destroy(desktop.domain_name)
    reconcile_host(host.pk)
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.STOPPED and desktop.status_reason == "Shut down from inside the desktop."


def test_it_puts_a_desktop_whose_domain_vanished_in_error(alice, host, template, work):
    desktop = _running(alice, template, work)
    hv = get_hypervisor(host.uri)
    hv.destroy(desktop.domain_name)
    hv.undefine(desktop.domain_name)
    reconcile_host(host.pk)
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.ERROR and desktop.status_reason == "Its VM disappeared from the host."


def test_it_destroys_orphans_after_the_grace_period(alice, host, template, settings):
    settings.ORPHAN_GRACE_S = 600
    hv = get_hypervisor(host.uri)
    name = "qz-99999-deadbeef"
    hv.volume_create("default", f"{name}.qcow2", 1024**2)
    hv.define(
        DomainSpec(
            name=name,
            uuid="6f1c7c62-0c4e-4a53-9a8e-6a3f1d2b9c01",
            desktop_id=99999,
            tenant_slug="alice",
            vcpus=1,
            memory_mib=256,
            virt_type="qemu",
            disks=(DiskSpec(path=hv.volume_path("default", f"{name}.qcow2")),),
        )
    )
    hv.start(name)
    now = timezone.now()
    # First sighting: kept for the grace period (it might be a desktop being created right now)
    assert reconcile_host(host.pk, now=now).orphans_pending == [name]
    assert reconcile_host(host.pk, now=now + timedelta(seconds=599)).orphans_destroyed == []
    # After it: destroyed with its volumes, and logged
    assert reconcile_host(host.pk, now=now + timedelta(seconds=601)).orphans_destroyed == [name]
    assert hv.list_domains() == []
    assert not hv.volume_exists("default", f"{name}.qcow2")
    assert not OrphanSighting.objects.exists()


def test_it_fails_a_stuck_operation_and_repairs_the_desktop(alice, host, template, work, settings):
    settings.OPERATION_STUCK_AFTER_S = 300
    desktop = _running(alice, template, work)
    # Given a stop whose worker died after moving the desktop to "stopping"
    Desktop.objects.filter(pk=desktop.pk).update(state=DesktopState.STOPPING)
    operation = OperationFactory(
        desktop=desktop,
        kind="stop",
        status=OperationStatus.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        step="shutting down",
    )
    # When reconcile runs before the timeout, it leaves it alone (the worker may be busy)
    reconcile_host(host.pk)
    assert Operation.objects.get(pk=operation.pk).status == OperationStatus.RUNNING
    # After the timeout the operation fails with a reason and the desktop follows the VM
    report = reconcile_host(host.pk, now=timezone.now() + timedelta(seconds=301))
    operation.refresh_from_db()
    assert report.failed_operations == [operation.pk]
    assert operation.status == OperationStatus.FAILED and operation.error_code == "worker_lost"
    assert "shutting down" in operation.error
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.RUNNING


def test_it_cleans_up_an_interrupted_provisioning(alice, host, template, image):
    # Given a desktop whose create died after cloning its disk and before defining the VM
    desktop = DesktopFactory(world=alice, template=template, name="half", state=DesktopState.PROVISIONING, host=host)
    Allocation.objects.create(desktop_id=desktop.pk, host=host, vcpus=2, memory_mib=2048)
    hv = get_hypervisor(host.uri)
    hv.volume_create("default", spec.disk_volume_name(desktop), 1024**2)
    # When reconcile runs (no operation is in flight any more)
    report = reconcile_host(host.pk)
    # Then the half-made disk and the capacity claim are gone, and the desktop says why it failed
    assert report.repaired == {desktop.pk: DesktopState.ERROR}
    assert not hv.volume_exists("default", spec.disk_volume_name(desktop))
    assert not Allocation.objects.filter(desktop_id=desktop.pk).exists()
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.ERROR and "interrupted" in desktop.status_reason


def test_it_finishes_an_interrupted_delete(alice, host, template, work):
    desktop = _running(alice, template, work)
    Desktop.objects.filter(pk=desktop.pk).update(state=DesktopState.DELETING)
    reconcile_host(host.pk)
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.DELETED
    assert get_hypervisor(host.uri).list_domains() == []


def test_it_skips_desktops_with_an_operation_in_flight(alice, host, template, work):
    desktop = _running(alice, template, work)
    Desktop.objects.filter(pk=desktop.pk).update(state=DesktopState.STOPPED)
    OperationFactory(desktop=desktop, kind="start", status=OperationStatus.QUEUED)
    report = reconcile_host(host.pk)
    assert report.stopped_domains == [] and report.repaired == {}


def _stray_domain(hv, name: str, uuid: str, installation: str | None) -> None:
    """A domain with our metadata naming a desktop this database does not have."""
    hv.define(
        DomainSpec(
            name=name,
            uuid=uuid,
            desktop_id=99998,
            tenant_slug="alice",
            vcpus=1,
            memory_mib=256,
            virt_type="qemu",
            installation=installation,
        )
    )


def test_it_leaves_another_installations_desktops_alone(alice, host, template, settings):
    # Given a host shared with another Quetzal installation (a staging beside production, a test run beside
    # `make run`): its desktop and one of our own that this database lost both show up as unknown domains
    settings.ORPHAN_GRACE_S = 0
    hv = get_hypervisor(host.uri)
    _stray_domain(hv, "qz-99998-0ther0000", "0e1c7c62-0c4e-4a53-9a8e-6a3f1d2b9c02", "staging-eu")
    _stray_domain(hv, "qz-99998-0ur000000", "1e1c7c62-0c4e-4a53-9a8e-6a3f1d2b9c03", installation_id())
    # When reconcile runs past the grace period
    report = reconcile_host(host.pk, now=timezone.now() + timedelta(seconds=1))
    # Then our orphan goes and the other installation's desktop stays, reported as foreign
    assert report.orphans_destroyed == ["qz-99998-0ur000000"]
    assert report.foreign_domains == ["qz-99998-0ther0000"]
    assert [d.name for d in hv.list_domains()] == ["qz-99998-0ther0000"]
    assert hv.list_domains()[0].installation == "staging-eu"


def test_it_stamps_every_desktop_it_makes_with_its_installation(alice, host, template, work):
    desktop = _running(alice, template, work)
    [domain] = [d for d in get_hypervisor(host.uri).list_domains() if d.desktop_id == desktop.pk]
    assert domain.installation == installation_id()
    # A database of another name is another installation, unless the setting names it
    assert installation_id().startswith("db-")


def test_the_setting_names_the_installation_when_databases_share_a_name(settings):
    settings.QUETZAL_INSTALLATION_ID = "prod-eu-1"
    assert installation_id() == "prod-eu-1"
