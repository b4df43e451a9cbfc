"""The console WebSocket against a local TCP server standing in for VNC: bytes, closes and refusals."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from desktops.choices import DesktopState
from desktops.console.consumers import ENDED_ELSEWHERE
from desktops.console.models import ConsoleSession, ConsoleTicket
from desktops.console.tests.fixtures import (  # noqa: F401 (fixtures)
    GREETING,
    adb,
    browser,
    communicator,
    fake_vnc_fixture,
    running_desktop,
    thread_connections_fixture,
)
from desktops.models import Desktop
from tenants.choices import Role
from tenants.models import AuditEvent, Membership
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("thread_connections")]

KEY_EVENT_A = bytes([4, 1, 0, 0, 0, 0, 0, 0x61])


@pytest.fixture
def desk(alice, host, template, fake_vnc):
    return running_desktop(alice, host, template, fake_vnc.port)


async def _open(desktop, who, ticket=None, **header_args):
    ticket = ticket if ticket is not None else await adb(who.ticket)(desktop)
    client = communicator(desktop.pk, ticket=ticket, headers=who.headers(**header_args))
    connected, subprotocol = await client.connect()
    return client, connected, subprotocol


async def _refused_with(client, timeout: float = 2) -> int:
    """The close code of a socket the proxy accepted only to refuse (or closed later)."""
    message = await client.receive_output(timeout)
    assert message["type"] == "websocket.close", message
    return message["code"]


async def test_it_pumps_bytes_both_ways_and_records_the_session(alice, desk, fake_vnc):
    member = await adb(browser)(alice.member, alice.tenant)
    # Given a member with a fresh ticket, when the page opens the console socket
    client, connected, subprotocol = await _open(desk, member)
    # Then the socket is accepted with the binary subprotocol and VNC's greeting comes through
    assert connected and subprotocol == "binary"
    assert await client.receive_from() == GREETING
    # And browser bytes (a key press) reach VNC unchanged
    await client.send_to(bytes_data=GREETING)
    await client.send_to(bytes_data=KEY_EVENT_A)
    assert await fake_vnc.wait_received(len(GREETING) + len(KEY_EVENT_A)) == GREETING + KEY_EVENT_A
    # And a large screen update reaches the browser complete and in order
    screen = os.urandom(3 * 1024 * 1024 + 17)
    await fake_vnc.send(screen)
    got = bytearray()
    while len(got) < len(screen):
        got.extend(await client.receive_from(timeout=5))
    assert bytes(got) == screen
    # When the browser closes the tab
    await client.disconnect()
    # Then VNC sees the connection end, and the session is on record with its bytes each way
    await asyncio.wait_for(fake_vnc.eof.wait(), 5)
    session = await adb(ConsoleSession.objects.get)(desktop=desk)
    assert session.ended_at is not None and session.end_reason.startswith("browser_closed")
    assert (session.user_id, session.client_ip, session.admin_access) == (alice.member.pk, "127.0.0.1", False)
    assert session.bytes_to_desktop == len(GREETING) + len(KEY_EVENT_A)
    assert session.bytes_from_desktop == len(GREETING) + len(screen)
    desktop = await adb(Desktop.objects.get)(pk=desk.pk)
    assert desktop.consoles_open == 0 and desktop.last_activity_at >= session.started_at
    actions = await adb(lambda: list(AuditEvent.objects.filter(tenant=alice.tenant).values_list("action", flat=True)))()
    assert sorted(actions) == ["console.close", "console.open"]


async def test_it_counts_the_open_console_for_the_idle_policy(alice, desk, fake_vnc):
    member = await adb(browser)(alice.member, alice.tenant)
    client, connected, _ = await _open(desk, member)
    assert connected
    await client.receive_from()
    assert (await adb(Desktop.objects.get)(pk=desk.pk)).consoles_open == 1
    await client.disconnect()
    await asyncio.wait_for(fake_vnc.eof.wait(), 5)
    assert (await adb(Desktop.objects.get)(pk=desk.pk)).consoles_open == 0


async def test_it_closes_the_socket_cleanly_when_vnc_hangs_up(alice, desk, fake_vnc):
    member = await adb(browser)(alice.member, alice.tenant)
    client, connected, _ = await _open(desk, member)
    assert connected
    await client.receive_from()
    # When the desktop stops (QEMU closes its VNC connections)
    await fake_vnc.hang_up()
    # Then the browser gets a normal close, and the session ends with that reason
    assert await _refused_with(client) == 1000
    await client.disconnect()
    session = await adb(ConsoleSession.objects.get)(desktop=desk)
    assert session.end_reason == "desktop_closed"
    assert (await adb(Desktop.objects.get)(pk=desk.pk)).consoles_open == 0


async def test_it_ends_the_socket_when_the_session_is_ended_elsewhere(alice, desk, fake_vnc, settings):
    settings.CONSOLE_HEARTBEAT_S = 1
    member = await adb(browser)(alice.member, alice.tenant)
    client, connected, _ = await _open(desk, member)
    assert connected
    await client.receive_from()
    await adb(lambda: ConsoleSession.objects.update(ended_at=timezone.now(), end_reason="proxy_lost"))()
    assert await _refused_with(client, timeout=5) == ENDED_ELSEWHERE
    await client.disconnect()


async def test_it_cuts_the_console_when_the_person_signs_out(alice, desk, fake_vnc, settings):
    settings.CONSOLE_HEARTBEAT_S = 1
    member = await adb(browser)(alice.member, alice.tenant)
    client, connected, _ = await _open(desk, member)
    assert connected
    await client.receive_from()
    # When the browser session ends (sign out elsewhere, or an admin revoked it)
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore(member.session_key)
    await adb(store.delete)()
    # Then the console is closed within a heartbeat and its session says why
    assert await _refused_with(client, timeout=5) == ENDED_ELSEWHERE
    await client.disconnect()
    session = await adb(ConsoleSession.objects.get)(desktop=desk)
    assert session.end_reason == "access_revoked"
    assert (await adb(Desktop.objects.get)(pk=desk.pk)).consoles_open == 0


async def test_it_cuts_the_console_of_someone_removed_from_the_tenant(alice, desk, fake_vnc, settings):
    settings.CONSOLE_HEARTBEAT_S = 1
    member = await adb(browser)(alice.member, alice.tenant)
    client, connected, _ = await _open(desk, member)
    assert connected
    await client.receive_from()
    # A raw DELETE sends no signal (as a change made outside Django would not): only the heartbeat notices it
    membership = await adb(alice.membership)(alice.member)
    await adb(lambda: Membership.objects.filter(pk=membership.pk)._raw_delete(using="default"))()
    assert await _refused_with(client, timeout=5) == ENDED_ELSEWHERE
    await client.disconnect()
    assert (await adb(ConsoleSession.objects.get)(desktop=desk)).end_reason == "access_revoked"


# Refusals: the socket is refused before any TCP connection to VNC is made.


async def test_it_refuses_without_a_signed_in_session(alice, desk, fake_vnc):
    member = await adb(browser)(alice.member, alice.tenant)
    ticket = await adb(member.ticket)(desk)
    headers = [h for h in member.headers() if h[0] != b"cookie"]
    client = communicator(desk.pk, ticket=ticket, headers=headers)
    connected, _ = await client.connect()
    assert connected and await _refused_with(client) == 4401
    assert fake_vnc.connections == 0


async def test_it_refuses_another_tenants_desktop(alice, bob, desk, host, template, fake_vnc):
    # Given bob's member, holding a valid ticket for his own desktop
    bobs_desk = await adb(running_desktop)(bob, host, template, fake_vnc.port)
    outsider = await adb(browser)(bob.member, bob.tenant)
    ticket = await adb(outsider.ticket)(bobs_desk)
    # When he aims it at alice's desktop, it is not found; and his own ticket stays unused
    client, connected, _ = await _open(desk, outsider, ticket=ticket)
    assert connected and await _refused_with(client) == 4404
    assert fake_vnc.connections == 0
    assert await adb(ConsoleTicket.objects.filter(desktop=bobs_desk, used_at__isnull=True).count)() == 1


async def test_it_refuses_and_burns_a_ticket_presented_by_another_person(alice, desk, fake_vnc):
    member = await adb(browser)(alice.member, alice.tenant)
    colleague_user = await adb(UserFactory)()
    await adb(MembershipFactory)(user=colleague_user, tenant=alice.tenant, role=Role.MEMBER)
    colleague = await adb(browser)(colleague_user, alice.tenant)
    # Given a ticket issued to the member, when a colleague presents it
    ticket = await adb(member.ticket)(desk)
    client, connected, _ = await _open(desk, colleague, ticket=ticket)
    assert connected and await _refused_with(client) == 4410
    # Then nothing reached VNC, and the leaked ticket is dead for its owner too
    retry, connected, _ = await _open(desk, member, ticket=ticket)
    assert connected and await _refused_with(retry) == 4410
    assert fake_vnc.connections == 0


async def test_it_refuses_a_ticket_from_another_browser_session(alice, desk, fake_vnc):
    laptop = await adb(browser)(alice.member, alice.tenant)
    phone = await adb(browser)(alice.member, alice.tenant)
    ticket = await adb(laptop.ticket)(desk)
    client, connected, _ = await _open(desk, phone, ticket=ticket)
    assert connected and await _refused_with(client) == 4410
    assert fake_vnc.connections == 0


async def test_it_refuses_an_admin_when_the_tenant_disallows_it(alice, desk, fake_vnc):
    # Given an admin who got a ticket while the tenant allowed admin access
    alice.tenant.allow_admin_console_access = True
    await adb(alice.tenant.save)()
    admin = await adb(browser)(alice.admin, alice.tenant)
    ticket = await adb(admin.ticket)(desk)
    # When the policy is switched off before the socket opens, the socket is refused
    alice.tenant.allow_admin_console_access = False
    await adb(alice.tenant.save)()
    client, connected, _ = await _open(desk, admin, ticket=ticket)
    assert connected and await _refused_with(client) == 4403
    assert fake_vnc.connections == 0


async def test_it_lets_an_admin_in_when_allowed_and_audits_it(alice, desk, fake_vnc):
    alice.tenant.allow_admin_console_access = True
    await adb(alice.tenant.save)()
    admin = await adb(browser)(alice.admin, alice.tenant)
    client, connected, _ = await _open(desk, admin)
    assert connected and await client.receive_from() == GREETING
    await client.disconnect()
    event = await adb(AuditEvent.objects.get)(action="console.open")
    assert event.actor_id == alice.admin.pk
    assert event.data["admin_access"] is True and event.data["owner"] == alice.member.email
    assert (await adb(ConsoleSession.objects.get)(desktop=desk)).admin_access


async def test_it_refuses_a_reused_ticket(alice, desk, fake_vnc):
    member = await adb(browser)(alice.member, alice.tenant)
    ticket = await adb(member.ticket)(desk)
    first, connected, _ = await _open(desk, member, ticket=ticket)
    assert connected and await first.receive_from() == GREETING
    await first.disconnect()
    second, connected, _ = await _open(desk, member, ticket=ticket)
    assert connected and await _refused_with(second) == 4410
    assert fake_vnc.connections == 1


async def test_it_refuses_an_expired_ticket(alice, desk, fake_vnc):
    member = await adb(browser)(alice.member, alice.tenant)
    ticket = await adb(member.ticket)(desk)
    await adb(lambda: ConsoleTicket.objects.update(expires_at=timezone.now() - timedelta(seconds=1)))()
    client, connected, _ = await _open(desk, member, ticket=ticket)
    assert connected and await _refused_with(client) == 4410
    assert fake_vnc.connections == 0
    refusal = await adb(AuditEvent.objects.get)(action="console.refused")
    assert refusal.data["code"] == "ticket_expired"


async def test_it_refuses_without_a_ticket(alice, desk, fake_vnc):
    member = await adb(browser)(alice.member, alice.tenant)
    client, connected, _ = await _open(desk, member, ticket="")
    assert connected and await _refused_with(client) == 4410
    assert fake_vnc.connections == 0


@pytest.mark.parametrize(
    ("origin", "host_header"),
    [
        ("http://evil.example", "testserver"),  # not an allowed host at all
        ("http://localhost", "testserver"),  # allowed host, but another site than the one asked
        ("http://testserver:8443", "testserver"),  # same name, other port
        ("null", "testserver"),  # sandboxed frames and file:// pages
    ],
)
async def test_it_refuses_a_foreign_origin(alice, desk, fake_vnc, origin, host_header):
    member = await adb(browser)(alice.member, alice.tenant)
    ticket = await adb(member.ticket)(desk)
    client, connected, _ = await _open(desk, member, ticket=ticket, origin=origin, host=host_header)
    # The handshake itself is refused, nothing reaches VNC, and the ticket was not even looked at
    assert not connected
    assert fake_vnc.connections == 0
    assert await adb(ConsoleTicket.objects.filter(used_at__isnull=True).count)() == 1


async def test_it_refuses_a_stopped_desktop(alice, desk, fake_vnc):
    member = await adb(browser)(alice.member, alice.tenant)
    ticket = await adb(member.ticket)(desk)
    await adb(lambda: Desktop.objects.filter(pk=desk.pk).update(state=DesktopState.STOPPED))()
    client, connected, _ = await _open(desk, member, ticket=ticket)
    assert connected and await _refused_with(client) == 4409
    assert fake_vnc.connections == 0


async def test_it_refuses_when_the_vm_is_not_running_on_its_host(alice, desk, fake_vnc):
    # The database says running, libvirt says otherwise (reconcile has not caught up yet)
    from hosts.hypervisor import get_hypervisor

    await adb(get_hypervisor(desk.host.uri).destroy)(desk.domain_name)
    member = await adb(browser)(alice.member, alice.tenant)
    client, connected, _ = await _open(desk, member)
    assert connected and await _refused_with(client) == 4409
    assert fake_vnc.connections == 0
    session = await adb(ConsoleSession.objects.get)(desktop=desk)
    assert session.end_reason == "desktop_not_running"
    assert (await adb(Desktop.objects.get)(pk=desk.pk)).consoles_open == 0
