"""Pages in the person's language: from the browser's Accept-Language or their choice; German is complete."""

from __future__ import annotations

import re
from pathlib import Path

from django.test import Client

from tests.fixtures import login_client

CATALOGUE = Path(__file__).resolve().parents[1] / "locale" / "de" / "LC_MESSAGES" / "django.po"


def test_it_speaks_german_to_a_german_browser(alice):
    client = login_client(alice.member, alice.tenant)
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").content.decode()
    assert '<html lang="de">' in page
    assert "Meine Desktops" in page and "Einen Desktop starten" in page
    # And English to everyone else
    assert "My desktops" in client.get("/", HTTP_ACCEPT_LANGUAGE="en-GB").content.decode()


def test_it_keeps_the_language_a_person_chose(alice):
    client = login_client(alice.member, alice.tenant)
    response = client.post("/i18n/setlang/", {"language": "de", "next": "/"})
    assert response.status_code == 302
    assert "Meine Desktops" in client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_it_translates_error_pages_and_end_reasons(db):
    page = Client().get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Diese Seite gibt es nicht" in page


def test_it_has_every_german_message_translated():
    text = CATALOGUE.read_text(encoding="utf-8")
    assert "#, fuzzy" not in text
    entries = re.findall(r'^msgid ((?:".*"\n)+)msgstr ((?:".*"\n?)+)', text, flags=re.M)
    untranslated = [mid for mid, mstr in entries[1:] if mstr.strip() == '""']
    assert len(entries) > 50 and untranslated == []
