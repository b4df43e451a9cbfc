"""Pages in the person's language: from the browser's Accept-Language or their choice; German is complete.

That covers the scripts too (the djangojs catalogue at /jsi18n/, which the layout loads before every page script)
and the audit log's words for each event.
"""

from __future__ import annotations

import base64
import gettext
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from desktops.tests.browser import chromium  # noqa: F401  (fixture)
from quetzal.kek import current_kek
from tenants.models import AuditEvent
from tenants.sso.tests.provider import configure, oidc_provider  # noqa: F401  (fixture)
from tests.catalogue import Entry, read_po
from tests.fixtures import login_client
from tests.processes import child_env, require_shared_services, start_asgi_server
from tests.services import require_module

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = ROOT / "locale" / "de" / "LC_MESSAGES"
CATALOGUE = MESSAGES / "django.po"
SCRIPT_CATALOGUE = MESSAGES / "djangojs.po"


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


@pytest.mark.parametrize("catalogue", [CATALOGUE, SCRIPT_CATALOGUE], ids=["django", "djangojs"])
def test_it_has_every_german_message_translated(catalogue):
    # Read as gettext reads it (wrapped lines joined, each plural form), so how makemessages wraps is no matter
    entries = read_po(catalogue)
    assert len(entries) > 50
    assert [e.msgid for e in entries if e.fuzzy] == []
    assert [e.msgid for e in entries if e.untranslated] == []
    # And the compiled catalogue beside it says the same (compilemessages ran after the last change)
    with catalogue.with_suffix(".mo").open("rb") as compiled_file:
        compiled = gettext.GNUTranslations(compiled_file)
    stale = [
        e.msgid
        for e in entries
        if not e.plural
        and (compiled.pgettext(e.context, e.msgid) if e.context else compiled.gettext(e.msgid)) != e.translations[0]
    ]
    assert stale == []


# What makemessages must not read: installed packages, front-end libraries, run-time files.
NOT_SOURCE = {".git", ".venv", "node_modules", "var", "vendor", "__pycache__", "staticfiles", "test-artifacts"}


def _source_copy(into: Path) -> Path:
    """The files makemessages reads (Python, templates, scripts) and the catalogues, copied out of the tree."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in NOT_SOURCE and not d.startswith(".")]
        for name in files:
            if name.endswith((".py", ".html", ".txt", ".js", ".po")):
                source = Path(folder) / name
                target = into / source.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    return into


def _makemessages(tree: Path, domain: str) -> list[Entry]:
    command = [sys.executable, "manage.py", "makemessages", "-l", "de", "-d", domain, "--no-obsolete"]
    command += [f"--ignore={pattern}" for pattern in ("static/vendor*", "node_modules", ".venv")]
    result = subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return read_po(tree / "locale" / "de" / "LC_MESSAGES" / f"{domain}.po")


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_makemessages_finds_nothing_new_and_nothing_untranslated(domain, tmp_path):
    # Regenerated from the code as it is now (in a copy, so the committed catalogue stays as it is)
    fresh = _makemessages(_source_copy(tmp_path / "tree"), domain)
    assert len(fresh) > 50
    assert [e.msgid for e in fresh if e.fuzzy] == []
    assert [e.msgid for e in fresh if e.untranslated] == []
    # And the committed catalogue is that one: no string missing from it, none left over
    committed = read_po(MESSAGES / f"{domain}.po")
    assert sorted(e.key for e in fresh if e.key not in {c.key for c in committed}) == []
    assert sorted(c.key for c in committed if c.key not in {e.key for e in fresh}) == []


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_the_committed_mo_is_compiled_from_the_po(domain):
    with open(MESSAGES / f"{domain}.mo", "rb") as compiled:
        mo = gettext.GNUTranslations(compiled)
    stale = []
    for entry in read_po(MESSAGES / f"{domain}.po"):
        if entry.plural:
            got = tuple(
                mo.npgettext(entry.context, entry.msgid, entry.plural, n)
                if entry.context
                else mo.ngettext(entry.msgid, entry.plural, n)
                for n in (1, 2)
            )
        else:
            got = (mo.pgettext(entry.context, entry.msgid) if entry.context else mo.gettext(entry.msgid),)
        if got != entry.translations:
            stale.append(entry.msgid)
    assert stale == [], "compilemessages -l de, then commit the .mo"


def _script_catalogue(client, language: str) -> dict:
    response = client.get("/jsi18n/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    assert "max-age" in response["Cache-Control"]  # cached: every page loads it
    found = re.search(r"const newcatalog = (\{.*?\});\n", response.content.decode(), flags=re.S)
    return json.loads(found.group(1)) if found else {}


def test_the_scripts_catalogue_is_in_the_browsers_language_and_every_page_loads_it_first(alice):
    client = login_client(alice.member, alice.tenant)
    german = _script_catalogue(client, "de-DE,de;q=0.9")
    assert german["Connecting\u2026"] == "Verbinde\u2026"
    assert german["%s desktop reporting"] == ["%s Desktop meldet Werte", "%s Desktops melden Werte"]
    # English has no catalogue: the scripts show their own text (and the cache keeps the two apart)
    assert _script_catalogue(client, "en") == {}
    assert _script_catalogue(client, "de")["Connecting\u2026"] == "Verbinde\u2026"
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert page.index('src="/jsi18n/"') < page.index("js/i18n.js") < page.index("<script", page.index("js/i18n.js"))


def test_it_names_audit_events_in_german(alice):
    AuditEvent.objects.create(tenant=alice.tenant, actor=alice.admin, action="desktop.create", target_repr="dev")
    client = login_client(alice.admin, alice.tenant)
    page = client.get(reverse("tenants:audit"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Desktop angelegt" in page and "Alle Arten von Ereignissen" in page
    assert "Desktop created" in client.get(reverse("tenants:audit"), HTTP_ACCEPT_LANGUAGE="en").content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_german_browser_gets_the_scripts_text_in_german(alice, oidc_provider, chromium, tmp_path):  # noqa: F811
    expect = require_module("playwright.sync_api", "the playwright Python package").expect
    require_shared_services("the server process")
    configure(alice.tenant, alice.owner, oidc_provider.issuer)
    env = child_env(QUETZAL_KEK=base64.b64encode(current_kek().key).decode(), QUETZAL_VAR_DIR=str(tmp_path / "var"))
    server, base = start_asgi_server(env=env, log_path=tmp_path / "server.log")
    try:
        errors: list[str] = []
        page = chromium.new_context(locale="de-DE", viewport={"width": 390, "height": 844}).new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/accounts/login/")
        # sso_login.js writes the button's text when the address belongs to a provider: in German here
        page.fill("input[name=login]", "ana@acme.test")
        expect(page.get_by_test_id("sign-in")).to_have_text("Weiter mit Acme ID")
        assert errors == []
    finally:
        server.stop(15)
