"""Console session end reasons are shown as sentences, on the sessions page and in the API."""

from __future__ import annotations

import pytest
from django.utils import timezone

from desktops.console import reasons
from desktops.console.models import ConsoleSession
from desktops.tests.factories import DesktopFactory
from tests.fixtures import api_client, login_client


@pytest.mark.parametrize(
    ("stored", "sentence"),
    [
        ("browser_closed:1005", "The browser tab was closed or left the page."),
        ("browser_closed:1006", "The connection dropped (network or browser)."),
        ("browser_closed:4999", "The browser closed the connection."),
        ("access_ended:removed", "The person was removed from the organisation."),
        ("access_ended:signed_out", "The person signed out."),
        ("access_ended:something_new", "The person's access changed."),
        ("desktop_closed", "The desktop stopped or restarted."),
        ("proxy_lost", "The server lost track of it (it restarted or crashed)."),
        ("brand_new_code", "Ended (brand_new_code)."),
    ],
)
def test_it_says_each_stored_reason_in_words(stored, sentence):
    assert reasons.describe(stored) == sentence


def _session(world, reason: str) -> ConsoleSession:
    desktop = DesktopFactory(world=world)
    now = timezone.now()
    return ConsoleSession.objects.create(
        desktop=desktop, tenant=world.tenant, user=world.member, started_at=now, ended_at=now, end_reason=reason
    )


def test_it_shows_sentences_on_the_sessions_page_and_in_the_api(alice, bob):
    # Given a session of Alice's that ended when the tab closed, and one of Bob's
    mine = _session(alice, "browser_closed:1005")
    _session(bob, "access_ended:removed")
    # When Alice's admin opens the sessions page and the API
    html = login_client(alice.admin, alice.tenant).get("/console/sessions/").content.decode()
    rows = api_client(alice.admin, alice.tenant).get("/api/v1/console-sessions/").json()["results"]
    # Then the sentence is shown, not the code; Bob's session is not
    assert "The browser tab was closed or left the page." in html
    assert ">browser_closed:1005<" not in html
    assert "The person was removed" not in html
    assert [(r["id"], r["end_reason"], r["end_reason_text"]) for r in rows] == [
        (mine.pk, "browser_closed:1005", "The browser tab was closed or left the page.")
    ]
