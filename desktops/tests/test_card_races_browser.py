"""The portal's desktop cards in Debian's Chromium when news of a desktop comes in an awkward order.

A card is re-read from the server when the live socket says its desktop changed, and followed while an operation
runs. Both can happen at once: a worker that starts the stop before the page has its answer sends the news first.
The server and worker are real processes (see test_browser_pages.py) on libvirt's test driver.
"""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.utils import timezone

from desktops.metrics import live
from desktops.models import Desktop
from desktops.tests import test_browser_pages as pages
from desktops.tests.conftest import make_test_host
from desktops.tests.factories import DesktopTemplateFactory
from hosts.choices import CopyState
from hosts.models import ImageCopy

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The page tests' server, worker and signed-in browsers, as fixtures of this module too.
processes, base, browsers = pages.processes, pages.base, pages.browsers

_REPLACED_WITH_OPERATION = """(selector) => {
  const card = document.querySelector(selector);
  return Boolean(card && !card.dataset.before && card.dataset.operation);
}"""


def test_a_card_follows_a_stop_whose_live_news_came_before_its_answer(
    alice, image, tmp_path, processes, browsers, base
):
    host = make_test_host(tmp_path, name="kvm-cards-01")
    ImageCopy.objects.create(
        image=image, host=host, state=CopyState.READY, pool="default", volume_name="base.qcow2", volume_path="/b"
    )
    template = DesktopTemplateFactory(name="Cards", image=image)
    processes.worker()
    worker = processes.running[-1]
    browser = browsers("desktop")
    # The test driver keeps VMs per process: a console page the launch opens is refused (4409/4503).
    browser.expected.extend(["(code: 4409)", "(code: 4503)"])
    page = browser.sign_in(alice.member.email)
    # Given the member's running desktop on the portal
    page.click(f'[data-testid="launch-{template.pk}"]')
    page.wait_for_url(re.compile(r".*/desktops/\d+/console/$"), timeout=90_000)
    desktop = Desktop.objects.get(pk=int(re.search(r"/desktops/(\d+)/console/", page.url)[1]))
    page.goto(f"{base}/")
    state = page.locator(f'[data-testid="state-{desktop.pk}"]')
    state.filter(has_text="Running").wait_for()
    card = f'[data-desktop="{desktop.pk}"]'
    page.evaluate(f"document.querySelector('{card}').dataset.before = '1'")
    # And a stop whose answer the page has not had yet, on a worker that has not begun it (paused)
    held = []
    page.route(f"**/api/v1/desktops/{desktop.pk}/stop/", lambda route: held.append((route, route.fetch())))
    os.killpg(worker.process.pid, signal.SIGSTOP)
    try:
        page.click(f'[data-testid="stop-{desktop.pk}"]')
        page.click('[data-testid="confirm-ok"]')
        deadline = time.monotonic() + 20
        while not held and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert held, "the stop never reached the server"
        # When the desktop's live news comes first, the card is read again with the stop under way
        while not page.evaluate(_REPLACED_WITH_OPERATION, card):
            assert time.monotonic() < deadline, "the live news never refreshed the card"
            news = live.state_pushes(
                desktop_id=desktop.pk, tenant_id=desktop.tenant_id, state="running", reason="", at=timezone.now()
            )
            # Playwright keeps an event loop on this thread, and publishing wants one of its own.
            with ThreadPoolExecutor(max_workers=1) as pool:
                assert pool.submit(live.publish, news).result() == len(news)
            page.wait_for_timeout(300)
        # And then the answer arrives and the worker carries the stop out
        route, response = held[0]
        route.fulfill(response=response)
    finally:
        os.killpg(worker.process.pid, signal.SIGCONT)
    # Then the card on the page follows the stop to its end (it used to stay "queued" for good: the answer's
    # follower refreshed a card no longer on the page, and the shown one was skipped as busy)
    state.filter(has_text="Stopped").wait_for(timeout=30_000)
    assert page.locator(f'[data-testid="reason-{desktop.pk}"]').text_content() == "Stopped on request"
    assert page.locator(card).get_attribute("data-operation") is None
