"""Pinch-zoom on the console's remote screen, in Debian's Chromium at phone size with real touch input (CDP's
Input.dispatchTouchEvent, as a finger would): two fingers spreading show the desktop 1:1 with one-finger drag,
pinching in fits it again, and the Fit button resets a pinch.

No VM answers here: the gesture is the page's, and the connection's overlay is put aside so the fingers land on
the screen (it covers the screen only while there is no desktop to show).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from desktops.tests.browser import chromium, sign_in  # noqa: F401  (fixture)
from desktops.tests.test_browser_pages import PHONE, base, processes, world  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Y = 420


def _fingers(cdp, start: tuple[int, int], end: tuple[int, int]) -> None:
    """Two fingers on one line at Y, from x positions `start` to `end` in five moves, then lifted."""
    points = lambda xs: [{"x": x, "y": Y, "id": n} for n, x in enumerate(xs)]  # noqa: E731
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points(start)})
    for step in range(1, 6):
        xs = [round(a + (b - a) * step / 5) for a, b in zip(start, end, strict=True)]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": points(xs)})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


_WHERE = (
    "JSON.stringify({targets: [ARGS].map(x => (document.elementFromPoint(x, Y) || {}).id || "
    "(document.elementFromPoint(x, Y) || {}).tagName), app: (document.querySelector('[data-state]') || {dataset: {}})"
    ".dataset.state, scale: window.quetzalConsole.scale, pinched: window.quetzalConsole.pinched})"
)


def _gesture(page, cdp, start: tuple[int, int], end: tuple[int, int], expect: str) -> None:
    """The fingers' gesture until the page shows `expect`: a person pinches again when one was not taken.

    In the whole suite (not alone, even under load) a full CI saw a gesture now and then not taken at all; three
    tries keep that from failing the run, and a gesture no try makes work fails with what lay under the fingers.
    """
    seen = []
    for _ in range(3):
        _fingers(cdp, start, end)
        try:
            page.wait_for_function(expect, timeout=4_000)
            return
        except PlaywrightTimeout:
            seen.append(page.evaluate(_WHERE.replace("ARGS", f"{start[0]}, {start[1]}").replace("Y", str(Y))))
    raise AssertionError(f"the gesture {start} -> {end} never gave {expect}: {seen}")


def test_it_zooms_the_remote_screen_with_two_fingers_and_resets(alice, world, chromium, base):  # noqa: F811
    context = chromium.new_context(**PHONE)
    page = sign_in(context.new_page(), base, alice.member.email)
    page.goto(f"{base}/desktops/{world['mine'].pk}/console/")
    # Fingers on a settled page (styles and fonts in), as a person's would be
    page.wait_for_load_state("load")
    page.evaluate("document.fonts.ready")
    page.evaluate("document.getElementById('qc-overlay').style.display = 'none'")
    assert page.evaluate(f"document.elementFromPoint(195, {Y}).closest('#qc-screen') !== null")
    state = "({scale: window.quetzalConsole.scale, pinched: window.quetzalConsole.pinched})"
    scale = page.locator('[data-cmd="scale"]')
    assert page.evaluate(state) == {"scale": True, "pinched": False} and scale.inner_text() == "Fit"
    cdp = context.new_cdp_session(page)
    # Touch events reach the page's handlers after CDP has sent them: wait for what they do. (On a loaded CI the
    # browser once took the fingers for its own pan/zoom and cancelled them: the screen now says touch-action: none.)
    zoomed = "window.quetzalConsole.pinched === true && window.quetzalConsole.scale === false"
    fitted = "window.quetzalConsole.pinched === false && window.quetzalConsole.scale === true"
    # Spreading two fingers: 1:1, dragged by one finger
    _gesture(page, cdp, (170, 220), (60, 330), zoomed)
    assert page.evaluate(state) == {"scale": False, "pinched": True} and scale.inner_text() == "1:1"
    # Pinching in: fitted again
    _gesture(page, cdp, (60, 330), (170, 220), fitted)
    assert page.evaluate(state) == {"scale": True, "pinched": False} and scale.inner_text() == "Fit"
    # Fingers that hardly move change nothing
    _fingers(cdp, (150, 240), (145, 245))
    assert page.evaluate(state) == {"scale": True, "pinched": False}
    # And the Fit button undoes a pinch
    _gesture(page, cdp, (170, 220), (60, 330), zoomed)
    page.evaluate("document.getElementById('qc-overlay').style.display = ''")
    scale.click()
    assert page.evaluate(state) == {"scale": True, "pinched": False} and scale.inner_text() == "Fit"
    context.close()
