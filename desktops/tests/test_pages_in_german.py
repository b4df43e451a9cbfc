"""The portal, the admin console and the help pages rendered in German: German text, no English left, nothing leaked.

A translation that loses a placeholder or keeps a doubled percent sign shows up here as raw "%(name)s" or "%%".
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from desktops.tests.page_world import populate
from tests.fixtures import login_client

GERMAN = "de-DE,de;q=0.9"
# Leftovers of a translation gone wrong: a placeholder, a doubled percent sign, a template tag
LEAKS = re.compile(r"%\(\w+\)s|%%|\{%|%\}|\{\{|\}\}")


@pytest.fixture
def world(alice, image):
    return populate(alice, image)


def _german(client, url: str) -> str:
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=GERMAN)
    assert response.status_code == 200, (url, response.status_code)
    page = response.content.decode()
    assert '<html lang="de">' in page, url
    body = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert LEAKS.findall(body) == [], url
    return page


def test_the_console_sessions_and_audit_pages_speak_german(alice, world):
    admin = login_client(alice.admin, alice.tenant)
    sessions = _german(admin, reverse("portal:console-sessions"))
    assert "Konsolensitzungen" in sessions and "Noch keine Konsolensitzungen." in sessions
    assert "Wer welche Desktop-Konsole geöffnet hat" in sessions and "No console sessions" not in sessions
    audit = _german(admin, reverse("tenants:audit"))
    assert "Wer was getan hat, von wo und wann." in audit and 'placeholder="Aktion, z. B. member."' in audit
    assert "Who did what" not in audit


def test_the_portal_speaks_german(alice, world):
    member = login_client(alice.member, alice.tenant)
    home = _german(member, "/")
    assert "Starten Sie einen Desktop oder machen Sie dort weiter" in home and "Launch a desktop, or pick" not in home
    files = _german(member, reverse("portal:files"))
    assert "<h1>Ihr Home-Ordner</h1>" in files and "Your home folder" not in files
    assert "Wie der Bildschirm des Desktops" in _german(member, reverse("portal:settings"))
    detail = _german(member, reverse("portal:desktop", args=[world["mine"].pk]))
    assert "Überblick" in detail and "Verlauf" in detail and "Overview" not in detail


def test_the_admin_console_speaks_german(alice, world):
    admin = login_client(alice.admin, alice.tenant)
    assert "Was die Desktops von" in _german(admin, reverse("manage:dashboard"))
    desktops = _german(admin, reverse("manage:desktops"))
    assert "Jeder Desktop in" in desktops and 'aria-label="Filter"' in desktops
    pools = _german(admin, reverse("manage:pools"))
    assert "Bereitstehende Desktops, in Sekunden vergeben." in pools
    scaling = _german(admin, reverse("manage:pool-scaling", args=[world["pool"].pk]))
    assert "Skalierung von" in scaling and "bereitstehende Desktops gewünscht" in scaling
    assert "Was Personen starten können" in _german(admin, reverse("manage:templates"))
    assert "Jeder Desktop liegt auf seinem Host" in _german(admin, reverse("manage:network"))


@pytest.mark.parametrize(
    ("audience", "phrase"), [("members", "Einen Desktop starten"), ("admins", "Ihre ersten Schritte")]
)
def test_the_help_pages_speak_german(alice, audience, phrase):
    client = login_client(alice.admin, alice.tenant)
    url = reverse("help") if audience == "members" else reverse("help-for", args=[audience])
    assert phrase in _german(client, url)
