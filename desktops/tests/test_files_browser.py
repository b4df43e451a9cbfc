"""The file manager in Debian's Chromium: several files uploaded (picker and drag and drop), listed, downloaded.

A real server and Celery worker (as in test_browser_pages.py) move the bytes; the home is a real ext4 image that
no desktop holds, so the host side (debugfs) serves it. Screenshots go to test-artifacts/pages/.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from desktops.tests.browser import sign_in
from desktops.tests.factories import HomeDiskFactory, fsck_clean
from desktops.tests.test_browser_pages import ARTIFACTS, VIEWPORTS, Processes, processes  # noqa: F401 (fixture)
from hosts.tests.factories import HostFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _sign_in(chromium, base: str, email: str, viewport: str):
    context = chromium.new_context(accept_downloads=True, **VIEWPORTS[viewport])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, base, email)
    return context, page, errors


def test_it_uploads_several_files_and_downloads_the_same_bytes(alice, chromium, processes, tmp_path):  # noqa: F811
    processes.worker()
    base = processes.server()
    home = HomeDiskFactory(world=alice, host=HostFactory(name="files-host"))
    big = os.urandom(9 * 1024 * 1024 + 3)  # three chunks of 4 MiB
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    context, page, errors = _sign_in(chromium, base, alice.member.email, "desktop")
    # Given the files page of a person whose home no desktop holds
    page.goto(f"{base}/files/")
    page.wait_for_selector("[data-testid=files-usage]:has-text('used')")
    # When two files are picked at once
    page.set_input_files("[data-testid=file-input]", [str(tmp_path / "big.bin"), str(tmp_path / "notes.txt")])
    page.wait_for_selector("tr[data-entry='notes.txt']", timeout=120_000)
    page.wait_for_selector("tr[data-entry='big.bin']", timeout=120_000)
    # And a third is dropped onto the list
    page.evaluate(
        """() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(["dropped bytes"], "dropped.txt", { type: "text/plain" }));
        const zone = document.querySelector("[data-drop]");
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }"""
    )
    page.wait_for_selector("tr[data-entry='dropped.txt']", timeout=60_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "files-desktop.png"), full_page=True)
    # Then downloading the big one gives the same bytes back
    with page.expect_download() as info:
        page.click("[data-testid='download-big.bin']")
    got = tmp_path / "got.bin"
    info.value.save_as(str(got))
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(big).digest()
    assert fsck_clean(home.volume_path)
    assert not errors, errors
    context.close()
    # And the page works on a phone
    phone, page, errors = _sign_in(chromium, base, alice.member.email, "phone")
    page.goto(f"{base}/files/")
    page.wait_for_selector("tr[data-entry='big.bin']")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(ARTIFACTS / "files-phone.png"), full_page=True)
    assert not errors, errors
    phone.close()
