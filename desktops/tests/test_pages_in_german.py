"""The portal, the admin console and the help pages rendered in German: German text, no English left, nothing leaked.

A translation that loses a placeholder or keeps a doubled percent sign shows up here as raw "%(name)s" or "%%".
"""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.text import capfirst

from desktops.models import DesktopTemplate, Pool, TemplateSize
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


# What a person reads of a form: labels, help texts, options, table heads.
READ = re.compile(
    r"<(label|th|option|legend)\b([^>]*)>(.*?)</\1>|<span class=\"helptext\"[^>]*>(.*?)</span>", flags=re.S
)
OPTION_VALUE = re.compile(r'value="([^"]*)"')
# The language picker names each language in its own language
LANGUAGE_NAMES = {"English", "Deutsch"}


def _same_in_german() -> set[str]:
    """Words the German catalogue translates as themselves on purpose (Status, Host, TCP), as a page shows them."""
    catalogue = translation.trans_real.translation("de")._catalog
    same = [
        str(msgstr)
        for msgid, msgstr in catalogue.items()
        if isinstance(msgid, str) and msgid and capfirst(msgid) == capfirst(str(msgstr))
    ]
    return {*same, *(capfirst(word) for word in same)}


def _read(client, url: str, language: str) -> set[str]:
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200, (url, response.status_code)
    found = set()
    for match in READ.finditer(response.content.decode()):
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(3) or match.group(4) or "")).split())
        text = text.removesuffix(":")  # a form's label suffix
        value = OPTION_VALUE.search(match.group(2) or "")
        if value and html.unescape(value.group(1)) == text:
            continue  # data shown as itself: a time zone's name
        if re.search(r"[^\W\d_]{2,}", text):
            found.add(text)
    return found


@pytest.mark.parametrize(
    "page",
    [
        "manage:pool",
        "manage:pool-scaling",
        "manage:template-new",
        "manage:template",
        "manage:template-sizes",
        "manage:templates",
        "manage:pools",
        "manage:desktops",
        "manage:new-members",
        "tenants:policies",
        "tenants:members",
        "tenants:tokens",
        "tenants:audit",
        "manage:network",
    ],
)
def test_the_admin_console_forms_show_no_english_label_in_german(alice, world, page):
    args = {"manage:pool": world["pool"].pk, "manage:pool-scaling": world["pool"].pk}
    args |= {"manage:template": world["cad"].pk, "manage:template-sizes": world["cad"].pk}
    url = reverse(page, args=[args[page]]) if page in args else reverse(page)
    admin = login_client(alice.admin, alice.tenant)
    english, german = _read(admin, url, "en"), _read(admin, url, "de-DE,de;q=0.9")
    assert len(english) >= 3, english  # the page has a form to read (the test would pass on an empty page)
    # Whatever reads the same in both languages was not translated; data (the pool's and template's names) aside
    data = {*DesktopTemplate.objects.values_list("name", flat=True), *Pool.objects.values_list("name", flat=True)}
    data |= {alice.member.email, alice.admin.email, alice.owner.email}
    allowed = _same_in_german() | LANGUAGE_NAMES
    same = sorted(text for text in english & german if text not in allowed and not any(d in text for d in data))
    assert same == [], f"English left on the German {page} page: {same}"


@pytest.mark.parametrize("page", ["portal:home", "portal:settings", "portal:desktop", "portal:files"])
def test_the_portal_shows_no_english_label_in_german(alice, world, page):
    url = reverse(page, args=[world["mine"].pk]) if page == "portal:desktop" else reverse(page)
    member = login_client(alice.member, alice.tenant)
    english, german = _read(member, url, "en"), _read(member, url, "de-DE,de;q=0.9")
    data = {
        *DesktopTemplate.objects.values_list("name", flat=True),
        *TemplateSize.objects.values_list("name", flat=True),
    }
    data |= {world["mine"].name, alice.member.email}  # names people gave things are data
    allowed = _same_in_german() | LANGUAGE_NAMES
    same = sorted(text for text in english & german if text not in allowed and not any(d in text for d in data))
    assert same == [], f"English left on the German {page} page: {same}"
