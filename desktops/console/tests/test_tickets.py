"""Console tickets, the console page and the activity counters the idle policy reads."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from desktops.choices import DesktopState
from desktops.console import activity, tickets
from desktops.console.models import ConsoleTicket
from desktops.console.proxy import is_input
from desktops.models import Desktop
from desktops.tests.factories import DesktopFactory
from tenants.services import tokens
from tests.fixtures import api_client, login_client


@pytest.fixture
def desk(alice, template) -> Desktop:
    return DesktopFactory(world=alice, template=template, name="Desk")


def _ticket(client, desktop):
    return client.post(f"/api/v1/desktops/{desktop.pk}/console-ticket/")


def test_it_issues_a_one_time_ticket_stored_only_as_a_hash(alice, desk, settings):
    # Given an operator who set a too-long lifetime
    settings.CONSOLE_TICKET_TTL_S = 600
    client = api_client(alice.member, alice.tenant)
    # When the owner asks for a ticket
    response = _ticket(client, desk)
    # Then it comes with the subprotocols to offer, and lives at most 60 s
    assert response.status_code == 201
    body = response.json()
    assert body["protocols"] == ["binary", f"quetzal.ticket.{body['ticket']}"]
    assert body["websocket"] == f"/ws/desktops/{desk.pk}/console/"
    assert body["expires_in"] == 60 and body["admin_access"] is False
    stored = ConsoleTicket.objects.get()
    assert stored.expires_at - stored.created_at == timedelta(seconds=60)
    # And the database holds hashes only: neither the ticket nor the session key
    session_key = client.session.session_key
    assert stored.token_hash == hashlib.sha256(body["ticket"].encode()).hexdigest()
    assert stored.session_key_hash == hashlib.sha256(session_key.encode()).hexdigest()
    row = " ".join(str(v) for v in ConsoleTicket.objects.values().get().values())
    assert body["ticket"] not in row and session_key not in row
    # And nothing about where VNC listens is in the answer
    assert "port" not in response.content.decode() and "5900" not in response.content.decode()


def test_it_refuses_a_ticket_for_a_stopped_desktop(alice, desk):
    Desktop.objects.filter(pk=desk.pk).update(state=DesktopState.STOPPED)
    response = _ticket(api_client(alice.member, alice.tenant), desk)
    assert response.status_code == 409
    assert response.json() == {"code": "desktop_not_running", "detail": "Desk is stopped."}


def test_it_hides_another_members_desktop(alice, desk):
    other = DesktopFactory(world=alice, user=alice.owner, template=desk.template, name="Owner's")
    response = _ticket(api_client(alice.member, alice.tenant), other)
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert not ConsoleTicket.objects.exists()


def test_it_lets_admins_in_only_when_the_tenant_allows_it(alice, desk):
    admin = api_client(alice.admin, alice.tenant)
    refused = _ticket(admin, desk)
    assert refused.status_code == 403 and refused.json()["code"] == "admin_console_disabled"
    alice.tenant.allow_admin_console_access = True
    alice.tenant.save()
    allowed = _ticket(admin, desk)
    assert allowed.status_code == 201 and allowed.json()["admin_access"] is True


def test_it_needs_a_browser_session_not_an_api_token(alice, desk):
    _, raw = tokens.create_token(membership=alice.membership(alice.member), name="script")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = _ticket(client, desk)
    assert response.status_code == 400 and response.json()["code"] == "session_required"


def test_it_redeems_a_ticket_once_even_when_raced(alice, desk):
    client = login_client(alice.member, alice.tenant)
    session_key = client.session.session_key
    issued = tickets.issue(
        desktop=desk, user=alice.member, membership=alice.membership(alice.member), session_key=session_key
    )
    assert tickets.redeem(token=issued.token, desktop_id=desk.pk, user=alice.member, session_key=session_key)
    with pytest.raises(tickets.TicketInvalid) as second:
        tickets.redeem(token=issued.token, desktop_id=desk.pk, user=alice.member, session_key=session_key)
    assert second.value.code == "ticket_used"


def test_it_purges_long_expired_tickets(alice, desk):
    client = login_client(alice.member, alice.tenant)
    membership = alice.membership(alice.member)
    old = tickets.issue(desktop=desk, user=alice.member, membership=membership, session_key=client.session.session_key)
    fresh = tickets.issue(desktop=desk, user=alice.member, membership=membership, session_key="k")
    ConsoleTicket.objects.filter(pk=old.ticket.pk).update(expires_at=timezone.now() - timedelta(days=2))
    assert tickets.purge() == 1
    assert list(ConsoleTicket.objects.values_list("pk", flat=True)) == [fresh.ticket.pk]


# The console page


def test_it_serves_the_console_page_to_the_owner_only(alice, bob, desk):
    page = login_client(alice.member, alice.tenant).get(f"/desktops/{desk.pk}/console/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-desktop="{desk.pk}"' in html and "js/console.js" in html and "admin-banner" not in html
    assert login_client(bob.admin, bob.tenant).get(f"/desktops/{desk.pk}/console/").status_code == 404
    assert login_client(alice.owner, alice.tenant).get(f"/desktops/{desk.pk}/console/").status_code == 200


def test_it_sends_anonymous_visitors_to_sign_in(desk):
    from django.test import Client

    response = Client().get(f"/desktops/{desk.pk}/console/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_warns_an_admin_that_they_view_a_members_desktop(alice, desk):
    html = login_client(alice.admin, alice.tenant).get(f"/desktops/{desk.pk}/console/").content.decode()
    assert "admin-banner" in html and alice.member.email in html


def test_it_keeps_the_console_page_from_other_members(alice, desk):
    from tests.factories import MembershipFactory, UserFactory

    colleague = UserFactory()
    MembershipFactory(user=colleague, tenant=alice.tenant)
    assert login_client(colleague, alice.tenant).get(f"/desktops/{desk.pk}/console/").status_code == 404


# Activity counters and small rules


def test_it_never_counts_consoles_below_zero(desk):
    # Given a desktop with one console open
    activity.console_opened(desk.pk)
    # When two closes arrive (a retried disconnect)
    activity.console_closed(desk.pk)
    activity.console_closed(desk.pk)
    # Then the counter stops at zero
    assert Desktop.objects.get(pk=desk.pk).consoles_open == 0


def test_it_only_moves_last_activity_forward(desk):
    now = timezone.now()
    assert activity.input_seen(desk.pk, at=now)
    assert not activity.input_seen(desk.pk, at=now - timedelta(minutes=5))
    assert Desktop.objects.get(pk=desk.pk).last_activity_at == now


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes([3, 1, 0, 0, 0, 0, 4, 0, 3, 0]), False),  # FramebufferUpdateRequest: the viewer polling
        (bytes([3, 1, 0, 0, 0, 0, 4, 0, 3, 0]) * 2, False),
        (bytes([4, 1, 0, 0, 0, 0, 0, 0x61]), True),  # KeyEvent
        (bytes([5, 0, 0, 10, 0, 20]), True),  # PointerEvent
        (bytes([255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 30]), True),  # QEMU extended key event
        (b"", False),
    ],
)
def test_it_tells_input_from_screen_polling(data, expected):
    assert is_input(data) is expected


def test_it_hands_the_console_page_the_persons_preferences_and_the_tenants_policy(alice, desk):
    from desktops.services.preferences import set_console_preferences

    # given a person who chose actual size and low bandwidth, in a tenant that forbids pasting into desktops
    set_console_preferences(user=alice.member, scaling="actual", quality="low")
    alice.tenant.clipboard_to_desktop = False
    alice.tenant.save()
    # when they open the console page
    html = login_client(alice.member, alice.tenant).get(f"/desktops/{desk.pk}/console/").content.decode()
    # then noVNC gets their choices, and the page offers no way to paste in (the proxy drops it anyway)
    assert 'data-scaling="actual"' in html and 'data-quality="2"' in html and 'data-compression="9"' in html
    assert 'data-clip-in="off"' in html and 'data-clip-out="on"' in html
    assert 'data-cmd="clip-send"' not in html and 'data-cmd="clip-type"' not in html
    # and the template has no sound device, so there is no mute button
    assert 'data-sound="off"' in html and 'data-cmd="mute"' not in html
