"""Bulk actions of the manage pages: snapshot every desktop, stop every idle one."""

from __future__ import annotations

from desktops.choices import DesktopKind, DesktopState, OperationKind
from desktops.models import Operation
from desktops.services import bulk
from desktops.tests.factories import DesktopFactory, OperationFactory
from desktops.tests.page_world import populate
from tenants.models import AuditEvent
from tests.fixtures import login_client


def test_it_snapshots_every_personal_desktop_that_can_be_and_skips_the_rest(alice, bob, image):
    # Given alice's running and stopped desktops, one busy desktop, a warm pooled one, and bob's world
    world = populate(alice, image)
    populate(bob, image)
    busy = DesktopFactory(world=alice, template=world["ubuntu"], lived_in=True, user=alice.owner)
    OperationFactory(desktop=busy, kind=OperationKind.REBOOT)
    hibernated = DesktopFactory(
        world=alice, template=world["ubuntu"], lived_in=True, user=alice.owner, state=DesktopState.HIBERNATED
    )
    # When an admin snapshots all desktops
    result = bulk.snapshot_all(tenant=alice.tenant, actor=alice.admin)
    # Then each running or stopped personal desktop of alice gets one snapshot operation, all one name
    queued = Operation.objects.in_flight().filter(kind=OperationKind.SNAPSHOT)
    assert {op.desktop_id for op in queued} == {world["mine"].pk, world["stopped"].pk, alice.admin.desktops.get().pk}
    assert len({op.params["snapshot"] for op in queued}) == 1
    # And the busy and hibernated ones are skipped with a reason, the pool's is left alone
    assert {desktop.pk for desktop, _ in result.skipped} == {busy.pk, hibernated.pk}
    assert result.summary("Snapshot") == "Snapshot queued for 3 desktops; 2 skipped."
    assert AuditEvent.objects.get(action="desktop.bulk_snapshot").data["queued"] == 3


def test_it_stops_running_desktops_with_no_console_open_and_recycles_held_pool_ones(alice, image):
    # Given the member's idle desktop, the admin's desktop in use, a warm pool desktop, and a held pooled one
    world = populate(alice, image)
    held = DesktopFactory(
        world=alice,
        template=world["ubuntu"],
        lived_in=True,
        user=alice.owner,
        kind=DesktopKind.POOLED,
        pool=world["pool"],
    )
    # When an admin stops all idle desktops
    result = bulk.stop_all_idle(tenant=alice.tenant, actor=alice.admin)
    # Then the idle personal desktop is stopped with a reason, the held pooled one is recycled
    operations = {op.desktop_id: op for op in Operation.objects.in_flight()}
    assert set(operations) == {world["mine"].pk, held.pk}
    assert operations[world["mine"].pk].kind == OperationKind.STOP
    assert operations[world["mine"].pk].params["reason"] == "Stopped while idle by admin@alice.test"
    assert operations[held.pk].kind == OperationKind.DELETE
    assert len(result.queued) == 2 and result.skipped == []


def test_it_runs_bulk_actions_from_the_console_for_admins_only(alice, image):
    world = populate(alice, image)
    member = login_client(alice.member, alice.tenant)
    assert member.post("/manage/desktops/bulk/", {"action": "stop_idle"}).status_code == 403
    assert not Operation.objects.in_flight().exists()
    admin = login_client(alice.admin, alice.tenant)
    response = admin.post("/manage/desktops/bulk/", {"action": "stop_idle"}, follow=True)
    assert response.status_code == 200 and b"Stop queued for 1 desktop." in response.content
    assert Operation.objects.in_flight().get().desktop_id == world["mine"].pk
    response = admin.post("/manage/desktops/bulk/", {"action": "format_disks"}, follow=True)
    assert b"Unknown bulk action." in response.content
