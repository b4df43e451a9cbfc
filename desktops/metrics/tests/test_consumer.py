"""The live socket: who may subscribe to what, and what reaches them (samples, states, progress)."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.db import connections

from desktops.metrics import live
from desktops.metrics.consumers import SIGNED_OUT
from desktops.metrics.tests.helpers import live_socket, session_headers
from desktops.models import Desktop
from desktops.state import transition
from desktops.tests.factories import DesktopFactory, OperationFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
adb = database_sync_to_async


@pytest.fixture(autouse=True)
async def close_thread_connections():
    """The ORM thread keeps its connection open; close it so the test database can be dropped."""
    yield
    await adb(connections.close_all)()


@pytest.fixture
def desk(alice, template) -> Desktop:
    return DesktopFactory(world=alice, template=template)


async def connect(user=None, tenant=None, **header_args):
    socket = live_socket(await adb(session_headers)(user, tenant, **header_args))
    connected, _ = await socket.connect()
    assert connected
    return socket


async def ask(socket, action: str, topic) -> dict:
    await socket.send_to(text_data=json.dumps({action: topic}))
    return json.loads(await socket.receive_from())


async def push_to(desktop_id: int, tenant_id: int) -> None:
    """A state event for the desktop's and the tenant's groups, as a lifecycle step would publish it."""
    from django.utils import timezone

    await adb(live.publish)(
        live.state_pushes(desktop_id=desktop_id, tenant_id=tenant_id, state="running", reason="", at=timezone.now())
    )


async def test_it_refuses_anonymous_sockets(desk):
    # Given a browser that is not signed in
    socket = await connect()
    # Then the socket is closed at once with the signed-out code (the page stops retrying)
    closing = await socket.receive_output(2)
    assert closing == {"type": "websocket.close", "code": SIGNED_OUT}
    await socket.disconnect()


async def test_it_accepts_the_owner_and_delivers_their_desktops_events(alice, desk):
    socket = await connect(alice.member, alice.tenant)
    # When the owner subscribes to their desktop
    assert await ask(socket, "subscribe", f"desktop:{desk.pk}") == {"type": "subscribed", "topic": f"desktop:{desk.pk}"}
    # Then a state change committed by the lifecycle reaches the page
    assert await adb(transition)(desk.pk, "stopping")
    event = json.loads(await socket.receive_from(2))
    assert (event["type"], event["topic"], event["desktop"], event["state"]) == (
        "state",
        f"desktop:{desk.pk}",
        desk.pk,
        "stopping",
    )
    # And after unsubscribing nothing more arrives
    assert (await ask(socket, "unsubscribe", f"desktop:{desk.pk}"))["type"] == "unsubscribed"
    await push_to(desk.pk, alice.tenant.pk)
    assert await socket.receive_nothing(0.3)
    await socket.disconnect()


async def test_it_refuses_other_tenants_desktops(alice, bob, desk):
    # Given Bob's tenant admin
    socket = await connect(bob.admin, bob.tenant)
    # When they ask for Alice's desktop, it looks like no desktop at all
    refusal = await ask(socket, "subscribe", f"desktop:{desk.pk}")
    assert (refusal["type"], refusal["code"], refusal["topic"]) == ("error", "not_found", f"desktop:{desk.pk}")
    # And none of its events reach them
    await push_to(desk.pk, alice.tenant.pk)
    assert await socket.receive_nothing(0.3)
    await socket.disconnect()


async def test_it_gives_a_colleagues_desktop_to_tenant_admins_only(alice, desk):
    member = await adb(UserFactory)()
    await adb(alice.tenant.memberships.create)(user=member, role="member")
    colleague = await connect(member, alice.tenant)
    assert (await ask(colleague, "subscribe", f"desktop:{desk.pk}"))["code"] == "not_found"
    admin = await connect(alice.admin, alice.tenant)
    assert (await ask(admin, "subscribe", f"desktop:{desk.pk}"))["type"] == "subscribed"
    await colleague.disconnect()
    await admin.disconnect()


async def test_it_gives_the_tenant_topic_to_its_admins_only(alice, bob, desk):
    member = await connect(alice.member, alice.tenant)
    assert (await ask(member, "subscribe", "tenant"))["code"] == "admin_required"
    admin = await connect(alice.admin, alice.tenant)
    other_admin = await connect(bob.admin, bob.tenant)
    assert (await ask(admin, "subscribe", "tenant"))["type"] == "subscribed"
    assert (await ask(other_admin, "subscribe", "tenant"))["type"] == "subscribed"
    # When something happens to an Alice desktop, Alice's admins hear of it and Bob's do not
    await push_to(desk.pk, alice.tenant.pk)
    event = json.loads(await admin.receive_from(2))
    assert (event["topic"], event["desktop"]) == ("tenant", desk.pk)
    assert await other_admin.receive_nothing(0.3)
    assert await member.receive_nothing(0.1)
    for socket in (member, admin, other_admin):
        await socket.disconnect()


async def test_it_gives_the_operators_topic_to_staff_only(alice):
    staff = await adb(UserFactory)(is_staff=True)
    owner = await connect(alice.owner, alice.tenant)
    assert (await ask(owner, "subscribe", "operators"))["code"] == "forbidden"
    # Operators need no tenant: the host topic is theirs, tenant topics are not
    operator = await connect(staff)
    assert (await ask(operator, "subscribe", "operators"))["type"] == "subscribed"
    assert (await ask(operator, "subscribe", "tenant"))["code"] == "no_tenant"
    await owner.disconnect()
    await operator.disconnect()


async def test_it_pushes_operation_progress_to_the_desktop_and_tenant(alice, desk):
    from desktops.services import progress

    owner = await connect(alice.member, alice.tenant)
    admin = await connect(alice.admin, alice.tenant)
    await ask(owner, "subscribe", f"desktop:{desk.pk}")
    await ask(admin, "subscribe", "tenant")
    operation = await adb(OperationFactory)(desktop=desk, kind="reboot")
    # When the worker records a step
    await adb(progress.step)(operation, "rebooting")
    # Then both pages see it, with the step's name
    for socket, topic in ((owner, f"desktop:{desk.pk}"), (admin, "tenant")):
        event = json.loads(await socket.receive_from(2))
        assert (event["type"], event["topic"], event["operation"], event["step"]) == (
            "operation",
            topic,
            operation.pk,
            "rebooting",
        )
    await owner.disconnect()
    await admin.disconnect()


async def test_it_answers_malformed_frames_with_a_stable_code(alice):
    socket = await connect(alice.member, alice.tenant)
    await socket.send_to(text_data="not json")
    assert json.loads(await socket.receive_from())["code"] == "invalid"
    assert (await ask(socket, "subscribe", "desktop:abc"))["code"] == "invalid"
    assert (await ask(socket, "subscribe", ["tenant"]))["code"] == "invalid"
    await socket.disconnect()


async def test_it_refuses_the_handshake_from_another_site(alice):
    socket = live_socket(await adb(session_headers)(alice.member, alice.tenant, origin="http://evil.example"))
    connected, _ = await socket.connect()
    assert not connected
