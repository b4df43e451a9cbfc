"""Fair share of consoles: the tenant's limits per person and per organisation, at the ticket and at the socket."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from desktops.console import fair_share, sessions
from desktops.console.errors import TooManyConsoles
from desktops.console.models import ConsoleSession
from desktops.console.tests.fixtures import (  # noqa: F401 (fixtures)
    adb,
    browser,
    communicator,
    fake_vnc_fixture,
    running_desktop,
    thread_connections_fixture,
)
from tenants.models import AuditEvent
from tests.concurrency import at_once, require_postgresql
from tests.fixtures import api_client


def _open_sessions(desktop, user, count: int, *, seen_ago_s: float = 0) -> None:
    seen = timezone.now() - timedelta(seconds=seen_ago_s)
    for _ in range(count):
        ConsoleSession.objects.create(
            tenant=desktop.tenant, desktop=desktop, user=user, started_at=seen, last_seen_at=seen
        )


def _ticket(world, desktop):
    return api_client(world.member, world.tenant).post(f"/api/v1/desktops/{desktop.pk}/console-ticket/")


@pytest.fixture
def desk(alice, host, template):
    return running_desktop(alice, host, template, 5999)


@pytest.mark.django_db
def test_a_person_at_the_tenants_limit_is_told_why_before_the_page_connects(alice, desk):
    alice.tenant.max_consoles_per_person = 2
    alice.tenant.save()
    # Given two consoles the person has open (two tabs)
    _open_sessions(desk, alice.member, 2)
    # When a third tab asks for a ticket
    response = _ticket(alice, desk)
    # Then it is refused with the code the page explains, naming the limit
    assert response.status_code == 429, response.json()
    assert response.json()["code"] == "too_many_consoles"
    assert "2 consoles open" in response.json()["detail"] and alice.tenant.name in response.json()["detail"]
    # When one of them closes, then a ticket is issued again
    ConsoleSession.objects.filter(pk=ConsoleSession.objects.first().pk).update(ended_at=timezone.now())
    assert _ticket(alice, desk).status_code == 201


@pytest.mark.django_db
def test_consoles_whose_proxy_went_silent_do_not_count(alice, desk, settings):
    settings.CONSOLE_HEARTBEAT_S = 30
    alice.tenant.max_consoles_per_person = 1
    alice.tenant.save()
    # Given a session whose web process died two minutes ago (no heartbeat for 4 heartbeats of 30 s)
    _open_sessions(desk, alice.member, 1, seen_ago_s=121)
    # Then the person is not locked out by it
    assert _ticket(alice, desk).status_code == 201
    # But one heard from a minute ago counts
    _open_sessions(desk, alice.member, 1, seen_ago_s=60)
    assert _ticket(alice, desk).status_code == 429


@pytest.mark.django_db
def test_the_organisations_limit_counts_everyone_and_zero_means_no_limit(alice, desk):
    tenant = alice.tenant
    tenant.max_consoles_per_person, tenant.max_consoles_per_tenant = 0, 3
    tenant.save()
    # Given three consoles open in the organisation, none of them this member's
    _open_sessions(desk, alice.owner, 3)
    # When the member asks for one, then the organisation is full and says so
    response = _ticket(alice, desk)
    assert response.status_code == 429, response.json()
    assert response.json()["code"] == "tenant_consoles_full" and "All 3 consoles" in response.json()["detail"]
    with pytest.raises(TooManyConsoles, match="All 3 consoles") as refused:
        fair_share.ensure_room(tenant=tenant, user=alice.member, now=timezone.now())
    assert refused.value.code == "tenant_consoles_full" and refused.value.status == 429
    # When both limits are 0, then many open consoles refuse nothing
    tenant.max_consoles_per_tenant = 0
    tenant.save()
    _open_sessions(desk, alice.member, 40)
    fair_share.ensure_room(tenant=tenant, user=alice.member, now=timezone.now())


@pytest.mark.django_db(transaction=True)
def test_two_tabs_racing_for_the_last_place_get_one_console(alice, desk):
    require_postgresql()
    alice.tenant.max_consoles_per_person = 1
    alice.tenant.save()
    member = browser(alice.member, alice.tenant)
    membership = alice.membership(alice.member)
    issued = [member.ticket(desk) for _ in range(2)]

    def connect(token):
        def call():
            return sessions.open_session(
                token=token,
                desktop_id=desk.pk,
                user=alice.member,
                membership=membership,
                session_key=member.session_key,
            )

        return call

    # When both tabs' sockets open at the same moment with their tickets
    results = at_once([connect(token) for token in issued])
    # Then one console opened and the other was refused, and the refusal is audited
    opened = [r for r in results if isinstance(r, sessions.ConsoleGrant)]
    refused = [r for r in results if isinstance(r, TooManyConsoles)]
    assert (len(opened), len(refused)) == (1, 1), results
    assert ConsoleSession.objects.filter(user=alice.member, ended_at__isnull=True).count() == 1
    assert AuditEvent.objects.filter(action="console.refused", data__code="too_many_consoles").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("thread_connections")
async def test_the_socket_closes_with_the_code_the_page_explains(alice, host, template, fake_vnc):
    desktop = await adb(running_desktop)(alice, host, template, fake_vnc.port)
    member = await adb(browser)(alice.member, alice.tenant)
    # Given a ticket issued while there was room, and the place taken meanwhile (another device)
    ticket = await adb(member.ticket)(desktop)

    def fill():
        alice.tenant.max_consoles_per_person = 1
        alice.tenant.save()
        _open_sessions(desktop, alice.member, 1)

    await adb(fill)()
    # When the page opens its socket with that ticket
    client = communicator(desktop.pk, ticket=ticket, headers=member.headers())
    connected, _ = await client.connect()
    # Then it is accepted only to close with 4429, and no session was recorded for it
    assert connected
    message = await client.receive_output(2)
    assert message == {"type": "websocket.close", "code": TooManyConsoles.close_code}
    assert await adb(ConsoleSession.objects.filter(desktop=desktop).count)() == 1
