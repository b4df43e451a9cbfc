"""Debian's Chromium under Playwright, shared by the browser tests (import the fixture by name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connections

from tests.factories import PASSWORD
from tests.services import require, require_module

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling out of this closed network.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def chromium(monkeypatch):
    """Debian's Chromium under Playwright."""
    require(Path(CHROMIUM).exists(), f"Chromium at {CHROMIUM} (apt-get install chromium)")
    # Playwright's sync API keeps an event loop on this thread; the test's ORM calls stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright_api = require_module("playwright.sync_api", "the playwright Python package")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
        # Database connections opened while Playwright drove the test belong to its context: close
        # them here, or the test database cannot be dropped at the end of the run.
        connections.close_all()


def sign_in(page, base: str, email: str, password: str = PASSWORD):
    """Sign in through the real login page (the test users have no second factor) and land on the portal."""
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(f"{base}/")
    return page
