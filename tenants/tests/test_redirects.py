"""Redirects after actions stay on this site: every route tried with next=https://evil.example, and the code scanned."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pyotp
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.tests.routes import all_routes
from tests.factories import PASSWORD
from tests.fixtures import login_client

EVIL = "https://evil.example/steal"
ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "tenants" / "redirects.py"
# Reading a request's `next` anywhere but the helper: .get("next"), ["next"], getlist("next").
NEXT_READ = re.compile(r"""(?:\.get(?:list)?\(\s*|\[\s*)["']next["']""")


def _off_site(response) -> bool:
    location = response.get("Location") or response.get("HX-Redirect") or ""
    return bool(urlsplit(location).netloc) and urlsplit(location).netloc != "testserver"


def _client(world) -> Client:
    client = login_client(world.owner, world.tenant)
    client.raise_request_exception = False  # a failing route is reported with the rest, not alone
    return client


def test_it_reads_next_only_through_the_one_helper():
    offenders = []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {".venv", "node_modules", "var"} or "tests" in relative.parts or path == HELPER:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if NEXT_READ.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "Read `next` through tenants.redirects.safe_next:\n" + "\n".join(offenders)


def test_it_never_redirects_off_site_from_any_route(alice):
    # Given the tenant's owner, also an operator, so every page, the admin included, is open to them
    alice.owner.is_staff = alice.owner.is_superuser = True
    alice.owner.save()
    leaks = []
    for route in all_routes():
        # When each route is asked for, and posted to, with next pointing elsewhere
        client = _client(alice)
        asked = client.get(route.url, {"next": EVIL})
        posted = client.post(route.url, {"next": EVIL, "slug": alice.tenant.slug})
        # Then no answer sends the browser off the site (nor fails)
        for method, response in (("GET", asked), ("POST", posted)):
            if _off_site(response) or response.status_code >= 500:
                target = response.get("Location", response.status_code)
                leaks.append(f"{method} {route.url} ({route.name}) -> {target}")
    assert not leaks, "\n".join(leaks)


def test_it_switches_tenant_and_stays_on_the_site(alice, bob):
    bob.tenant.memberships.create(user=alice.member)
    client = login_client(alice.member, alice.tenant)
    response = client.post("/organisations/switch/", {"slug": "bob", "next": EVIL})
    assert response.status_code == 302 and response["Location"] == "/"
    kept = client.post("/organisations/switch/", {"slug": "alice", "next": "/settings/tokens/"})
    assert kept["Location"] == "/settings/tokens/"


def test_it_stays_on_the_site_after_a_bulk_action(alice):
    response = login_client(alice.admin, alice.tenant).post(
        "/manage/desktops/bulk/", {"action": "stop_idle", "next": EVIL}
    )
    assert response.status_code == 302 and response["Location"] == "/manage/desktops/"
    kept = login_client(alice.admin, alice.tenant).post(
        "/manage/desktops/bulk/", {"action": "stop_idle", "next": "/manage/"}
    )
    assert kept["Location"] == "/manage/"


def test_it_stays_on_the_site_after_signing_in_and_out(alice):
    client = Client()
    signed_in = client.post(f"/accounts/login/?next={EVIL}", {"login": alice.member.email, "password": PASSWORD})
    assert signed_in.status_code == 302 and not _off_site(signed_in)
    signed_out = client.post("/accounts/logout/", {"next": EVIL})
    assert signed_out.status_code == 302 and not _off_site(signed_out)


def test_it_stays_on_the_site_after_the_second_factor(alice):
    device = TOTPDevice.objects.create(user=alice.member, name="phone", confirmed=True)
    client = Client()
    client.post("/accounts/login/", {"login": alice.member.email, "password": PASSWORD})
    code = pyotp.TOTP(base64.b32encode(device.bin_key).decode()).at(time.time())
    response = client.post("/accounts/2fa/verify/", {"code": code, "next": "//evil.example/x"})
    assert response.status_code == 302 and response["Location"] == "/"
