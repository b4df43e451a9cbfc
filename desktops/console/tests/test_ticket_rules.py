"""Console ticket rules at the service: who may get one, what each refusal says, and that a bad ticket
burns only itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from desktops.console import tickets
from desktops.console.errors import ConsoleForbidden, DesktopNotFound, SessionRequired, TicketInvalid
from desktops.console.models import ConsoleTicket
from desktops.models import Desktop
from desktops.tests.factories import DesktopFactory

SESSION = "a" * 32


@pytest.fixture
def desk(alice, template) -> Desktop:
    return DesktopFactory(world=alice, template=template, name="Desk")


def _issue(world, desktop, *, user=None, session_key=SESSION, ip=None) -> tickets.IssuedTicket:
    user = user or desktop.user
    return tickets.issue(desktop=desktop, user=user, membership=world.membership(user), session_key=session_key, ip=ip)


def _refusal(**kwargs) -> TicketInvalid:
    with pytest.raises(TicketInvalid) as refused:
        tickets.redeem(**kwargs)
    return refused.value


def _unused(ticket: tickets.IssuedTicket) -> bool:
    return ConsoleTicket.objects.get(pk=ticket.ticket.pk).used_at is None


# Who may have one


def test_it_hides_a_desktop_from_another_tenants_admin(alice, bob, desk):
    # Given bob's admin, with the console of alice's member's desktop in mind
    # When they ask for a ticket with their own (bob) membership, or with none
    for membership in (bob.membership(bob.admin), None):
        with pytest.raises(DesktopNotFound) as refused:
            tickets.issue(desktop=desk, user=bob.admin, membership=membership, session_key=SESSION)
        # Then the desktop does not exist for them, in words a person reads
        assert refused.value.detail == "No such desktop."
    assert not ConsoleTicket.objects.exists()


def test_it_tells_a_member_that_a_colleagues_desktop_does_not_exist(alice, desk):
    colleague_desk = DesktopFactory(world=alice, user=alice.owner, template=desk.template, name="Owner's")
    with pytest.raises(DesktopNotFound) as refused:
        _issue(alice, colleague_desk, user=alice.member)
    assert refused.value.detail == "No such desktop."


def test_it_tells_an_admin_why_the_members_console_is_closed(alice, desk):
    with pytest.raises(ConsoleForbidden) as refused:
        _issue(alice, desk, user=alice.admin)
    assert refused.value.code == "admin_console_disabled"
    assert refused.value.detail == "Your organisation does not allow admins to open members' consoles."


def test_it_asks_for_a_browser_session(alice, desk):
    for session_key in ("", None):
        with pytest.raises(SessionRequired) as refused:
            _issue(alice, desk, session_key=session_key)
        assert refused.value.detail == "Open the console from a signed-in browser session."


def test_it_makes_a_256_bit_ticket_and_records_the_address_it_was_asked_from(alice, desk):
    issued = _issue(alice, desk, ip="192.0.2.7")
    # 32 random bytes, URL-safe base64 without padding
    assert len(issued.token) == 43
    assert issued.protocol == "quetzal.ticket." + issued.token
    assert ConsoleTicket.objects.get(pk=issued.ticket.pk).ip_address == "192.0.2.7"


@pytest.mark.parametrize(("configured", "lifetime"), [(0, 1), (1, 1), (2, 2), (45, 45), (60, 60), (61, 60)])
def test_it_keeps_the_configured_lifetime_between_one_second_and_a_minute(settings, configured, lifetime):
    settings.CONSOLE_TICKET_TTL_S = configured
    assert tickets.ttl_s() == lifetime


def test_it_lives_30_seconds_when_no_lifetime_is_configured(settings):
    del settings.CONSOLE_TICKET_TTL_S
    assert tickets.ttl_s() == 30


def test_it_finds_the_ticket_among_the_offered_subprotocols():
    assert tickets.token_from_protocols(["binary", "quetzal.ticket.abc"]) == "abc"
    assert tickets.token_from_protocols(("binary",)) == ""
    assert tickets.token_from_protocols([]) == ""


# What each refusal says


def test_it_says_no_ticket_was_presented(alice, desk):
    refusal = _refusal(token="", desktop_id=desk.pk, user=alice.member, session_key=SESSION)
    assert refusal.code == "ticket_missing"
    assert refusal.detail == "No console ticket was presented; reload the page."


def test_it_refuses_an_unknown_ticket_and_leaves_the_persons_real_ticket_usable(alice, desk):
    # Given a valid ticket of alice's member
    real = _issue(alice, desk)
    # When a made-up ticket is presented by the same person, desktop and browser
    refusal = _refusal(token="made-up", desktop_id=desk.pk, user=alice.member, session_key=SESSION)
    # Then it is refused as unknown
    assert refusal.code == "ticket_unknown"
    assert refusal.detail == "This console link is not valid; reload the page."
    # And the real ticket still opens the console
    assert _unused(real)
    assert tickets.redeem(token=real.token, desktop_id=desk.pk, user=alice.member, session_key=SESSION)


def test_it_refuses_a_used_ticket(alice, desk):
    issued = _issue(alice, desk)
    tickets.redeem(token=issued.token, desktop_id=desk.pk, user=alice.member, session_key=SESSION)
    refusal = _refusal(token=issued.token, desktop_id=desk.pk, user=alice.member, session_key=SESSION)
    assert refusal.code == "ticket_used"
    assert refusal.detail == "This console link was already used; reload the page for a new one."


def test_it_refuses_an_expired_ticket_even_to_its_owner(alice, desk):
    issued = _issue(alice, desk)
    ConsoleTicket.objects.filter(pk=issued.ticket.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refusal = _refusal(token=issued.token, desktop_id=desk.pk, user=alice.member, session_key=SESSION)
    assert refusal.code == "ticket_expired"
    assert refusal.detail == "This console link expired; reload the page for a new one."


def test_it_counts_a_ticket_as_expired_at_the_instant_it_expires(alice, desk, monkeypatch):
    # Given a ticket, and the clock standing exactly at its expiry (a clock set by the test: the instant
    # cannot be hit otherwise)
    issued = _issue(alice, desk)
    monkeypatch.setattr(timezone, "now", lambda: issued.ticket.expires_at)
    # Then it is expired, not someone else's
    refusal = _refusal(token=issued.token, desktop_id=desk.pk, user=alice.member, session_key=SESSION)
    assert refusal.code == "ticket_expired"


@pytest.mark.parametrize("wrong", ["desktop", "person", "browser"])
def test_it_burns_a_ticket_presented_by_the_wrong_person_desktop_or_browser(alice, desk, template, wrong):
    # Given alice's member's ticket for Desk in their browser, and their other valid ticket
    issued = _issue(alice, desk)
    other = DesktopFactory(world=alice, template=template, name="Other")
    bystander = _issue(alice, other)
    presented = {"token": issued.token, "desktop_id": desk.pk, "user": alice.member, "session_key": SESSION}
    presented.update(
        {"desktop": {"desktop_id": other.pk}, "person": {"user": alice.admin}, "browser": {"session_key": "b" * 32}}[
            wrong
        ]
    )
    # When it is presented with the wrong one of them
    refusal = _refusal(**presented)
    # Then it is refused as someone else's
    assert refusal.code == "ticket_mismatch"
    assert refusal.detail == "This console link belongs to another person, desktop or browser."
    # And it is burnt: not even its owner can use it now
    again = _refusal(token=issued.token, desktop_id=desk.pk, user=alice.member, session_key=SESSION)
    assert again.code == "ticket_used"
    # While the person's other ticket stays usable
    assert _unused(bystander)


def test_a_bad_ticket_leaves_other_peoples_tickets_alone(alice, bob, desk, template):
    # Given unused tickets of alice's member, alice's owner and bob's member
    mine = _issue(alice, desk)
    owners = _issue(alice, DesktopFactory(world=alice, user=alice.owner, template=template), session_key="o" * 32)
    bobs = _issue(bob, DesktopFactory(world=bob, template=template), session_key="c" * 32)
    # When alice's member's ticket is presented from another browser (stolen)
    assert _refusal(token=mine.token, desktop_id=desk.pk, user=alice.member, session_key="x" * 32).code == (
        "ticket_mismatch"
    )
    # Then only that ticket is burnt
    assert not _unused(mine)
    assert _unused(owners) and _unused(bobs)
    assert tickets.redeem(token=bobs.token, desktop_id=bobs.ticket.desktop_id, user=bob.member, session_key="c" * 32)
