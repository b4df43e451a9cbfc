"""Sessions and sockets end together: sign-out, removal, a downgrade or a suspension closes live and console sockets.

Real WebSocket clients through the whole ASGI stack; the triggers are the real sign-out page and the tenants services.
"""

from __future__ import annotations

import asyncio

import pytest

from desktops.console.models import ConsoleSession
from desktops.console.tests.fixtures import (  # noqa: F401 (fixtures)
    GREETING,
    adb,
    browser,
    communicator,
    fake_vnc_fixture,
    running_desktop,
    thread_connections_fixture,
)
from tenants.channels import ACCESS_CHANGED, SIGNED_OUT
from tenants.choices import Role, TenantStatus
from tenants.services import members
from tenants.services import tenants as tenant_services
from tests.sockets import Communicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("thread_connections")]
# "Within seconds": the close must arrive well inside the console heartbeat (30 s by default).
WITHIN_S = 5


async def _live(who) -> Communicator:
    """The portal's live socket of a signed-in browser."""
    from quetzal.asgi import application

    client = Communicator(application, "/ws/live/", headers=who.headers())
    connected, _ = await client.connect(timeout=10)
    assert connected
    return client


async def _closed_with(client: Communicator) -> int:
    while True:
        message = await client.receive_output(WITHIN_S)
        if message["type"] == "websocket.close":
            return message["code"]


async def _stays_open(client: Communicator) -> bool:
    return await client.receive_nothing(timeout=1)


async def test_it_closes_the_live_socket_when_its_session_signs_out(alice):
    # Given a member with the portal open in two browsers
    here = await adb(browser)(alice.member, alice.tenant)
    elsewhere = await adb(browser)(alice.member, alice.tenant)
    socket, other = await _live(here), await _live(elsewhere)
    # When they sign out in the first one
    response = await adb(here.client.post)("/accounts/logout/")
    assert response.status_code == 302
    # Then that browser's socket closes as "signed out", and the other browser's stays open
    assert await _closed_with(socket) == SIGNED_OUT
    assert await _stays_open(other)
    await other.disconnect()


async def test_it_closes_the_sockets_of_someone_removed_from_the_tenant(alice):
    member = await adb(browser)(alice.member, alice.tenant)
    socket = await _live(member)
    await adb(members.remove_member)(
        membership=await adb(alice.membership)(alice.member), actor_membership=await adb(alice.membership)(alice.owner)
    )
    assert await _closed_with(socket) == ACCESS_CHANGED


async def test_it_closes_on_a_downgrade_but_not_on_a_promotion(alice):
    admin = await adb(browser)(alice.admin, alice.tenant)
    member = await adb(browser)(alice.member, alice.tenant)
    admins_socket, members_socket = await _live(admin), await _live(member)
    owner = await adb(alice.membership)(alice.owner)
    # When the member is made admin, their socket stays (it may only see more after reconnecting)
    await adb(members.change_role)(
        membership=await adb(alice.membership)(alice.member), role=Role.ADMIN, actor_membership=owner
    )
    assert await _stays_open(members_socket)
    # When the admin is made a member, their socket closes, to be authorised again for less
    await adb(members.change_role)(
        membership=await adb(alice.membership)(alice.admin), role=Role.MEMBER, actor_membership=owner
    )
    assert await _closed_with(admins_socket) == ACCESS_CHANGED
    await members_socket.disconnect()


async def test_it_closes_every_socket_of_a_suspended_tenant_and_no_other(alice, bob):
    alices = [await _live(await adb(browser)(person, alice.tenant)) for person in (alice.owner, alice.member)]
    bobs = await _live(await adb(browser)(bob.member, bob.tenant))
    await adb(tenant_services.set_status)(tenant=alice.tenant, status=TenantStatus.SUSPENDED, reason="test")
    assert [await _closed_with(socket) for socket in alices] == [ACCESS_CHANGED, ACCESS_CHANGED]
    assert await _stays_open(bobs)
    await bobs.disconnect()


def _delete_membership(world):
    world.membership(world.member).delete()  # the admin's inline "Delete" box does this


def _downgrade_in_admin(world):
    membership = world.membership(world.admin)
    membership.role = Role.MEMBER  # the admin's inline role select saves the row like this
    membership.save()


def _deactivate(world):
    world.member.is_active = False
    world.member.save()


def _suspend_in_admin(world):
    world.tenant.status = TenantStatus.SUSPENDED  # the tenant change form's status field
    world.tenant.save()


@pytest.mark.parametrize(
    ("change", "whose", "code"),
    [
        (_delete_membership, "member", ACCESS_CHANGED),
        (_downgrade_in_admin, "admin", ACCESS_CHANGED),
        (_deactivate, "member", SIGNED_OUT),
        (_suspend_in_admin, "member", ACCESS_CHANGED),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
async def test_it_closes_sockets_whatever_path_changes_the_row(alice, bob, change, whose, code):
    # Given a person with the portal open, and someone of another tenant too
    socket = await _live(await adb(browser)(getattr(alice, whose), alice.tenant))
    bystander = await _live(await adb(browser)(bob.member, bob.tenant))
    # When their access changes on the row itself, not through a tenants service (the Django admin, a shell)
    await adb(change)(alice)
    # Then their socket closes with the code the pages understand, and nobody else's does
    assert await _closed_with(socket) == code
    assert await _stays_open(bystander)
    await bystander.disconnect()


@pytest.fixture
def desk(alice, host, template, fake_vnc):
    return running_desktop(alice, host, template, fake_vnc.port)


async def _console(desktop, who) -> Communicator:
    client = communicator(desktop.pk, ticket=await adb(who.ticket)(desktop), headers=who.headers())
    connected, _ = await client.connect(timeout=10)
    assert connected and await client.receive_from() == GREETING
    return client


async def _session_ended(desktop) -> ConsoleSession:
    for _ in range(WITHIN_S * 10):
        session = await adb(ConsoleSession.objects.get)(desktop=desktop)
        if session.ended_at is not None:
            return session
        await asyncio.sleep(0.1)
    raise AssertionError("the console session was not ended")


async def test_it_closes_the_console_when_its_session_signs_out(alice, desk, fake_vnc, settings):
    settings.CONSOLE_HEARTBEAT_S = 300  # the heartbeat's own check must not be what closes it
    member = await adb(browser)(alice.member, alice.tenant)
    console = await _console(desk, member)
    await adb(member.client.post)("/accounts/logout/")
    assert await _closed_with(console) == SIGNED_OUT
    # And the proxy let go of VNC and recorded why the session ended
    await asyncio.wait_for(fake_vnc.eof.wait(), WITHIN_S)
    assert (await _session_ended(desk)).end_reason == "access_ended:signed_out"


async def test_it_closes_the_console_of_someone_removed_from_the_tenant(alice, desk, fake_vnc, settings):
    settings.CONSOLE_HEARTBEAT_S = 300
    member = await adb(browser)(alice.member, alice.tenant)
    console = await _console(desk, member)
    await adb(members.remove_member)(
        membership=await adb(alice.membership)(alice.member), actor_membership=await adb(alice.membership)(alice.owner)
    )
    assert await _closed_with(console) == ACCESS_CHANGED
    assert (await _session_ended(desk)).end_reason == "access_ended:removed"


def test_it_names_groups_without_the_session_key():
    from tenants.channels import session_group

    key = "s3cr3tsessionkeyvalue0123456789ab"
    assert key not in session_group(key) and len(session_group(key)) < 100
