"""Sizes in Debian's Chromium: the launcher's size picker, the resize panel and the manage sizes page, phone first.

The server and worker are real processes (see test_browser_pages.py); the worker drives libvirt's test driver,
which keeps vCPUs and RAM but cannot grow a disk, so the resizes here change vCPUs and RAM. Screenshots go to
test-artifacts/pages/ and, for a person to look at, /tmp/sizesui-<page>-<viewport>.png.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from desktops.choices import DesktopState
from desktops.models import Desktop, DesktopTemplate, TemplateSize
from desktops.tests import test_browser_pages as pages
from desktops.tests.conftest import make_test_host
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory
from desktops.tests.test_browser_pages import Browser, fresh_heartbeat
from hosts.choices import CopyState
from hosts.models import ImageCopy

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SHOTS = Path("/tmp")
# The page tests' server, worker and signed-in browsers, as fixtures of this module too.
processes, base, browsers = pages.processes, pages.base, pages.browsers


def shot(browser: Browser, page, name: str) -> None:
    """The page in test-artifacts/pages/ and in /tmp/sizesui-<name>-<viewport>.png."""
    path = browser.shot(page, f"sizes-{name}")
    (SHOTS / f"sizesui-{name}-{browser.viewport}.png").write_bytes(path.read_bytes())


@pytest.fixture
def sizes_world(alice, image, tmp_path) -> dict:
    """A test-driver host with the image; Studio (named sizes and ranges), Lab (ranges only), a private template."""
    host = make_test_host(tmp_path, name="kvm-sizes-01")
    ImageCopy.objects.create(
        image=image, host=host, state=CopyState.READY, pool="default", volume_name="base.qcow2", volume_path="/b"
    )
    studio = DesktopTemplateFactory(
        name="Studio",
        description="Design tools; pick a size.",
        image=image,
        vcpus=2,
        memory_mib=2048,
        disk_gib=20,
        min_vcpus=1,
        max_vcpus=8,
        min_memory_mib=1024,
        max_memory_mib=16384,
        max_disk_gib=100,
        price_per_hour=Decimal("0.10"),
    )
    small = TemplateSize.objects.create(template=studio, name="Small", vcpus=1, memory_mib=1024, disk_gib=20)
    large = TemplateSize.objects.create(template=studio, name="Large", vcpus=4, memory_mib=8192, disk_gib=40)
    lab = DesktopTemplateFactory(
        name="Lab",
        image=image,
        vcpus=2,
        memory_mib=2048,
        disk_gib=20,
        min_vcpus=1,
        max_vcpus=6,
        min_memory_mib=1024,
        max_memory_mib=8192,
        max_disk_gib=60,
    )
    private = DesktopTemplateFactory(
        name="Research workstation",
        image=image,
        vcpus=4,
        memory_mib=8192,
        disk_gib=40,
        visibility="tenant",
        tenant=alice.tenant,
    )
    TemplateSize.objects.create(template=private, name="Big", vcpus=8, memory_mib=16384, disk_gib=80)
    fresh_heartbeat()
    return {"host": host, "studio": studio, "lab": lab, "private": private, "small": small, "large": large}


def open_picker(page, template: DesktopTemplate):
    picker = page.locator(f'[data-testid="size-picker-{template.pk}"]')
    picker.locator("summary").click()
    return picker


def fits_the_screen(page) -> bool:
    """Nothing wider than the screen. Under phone emulation the layout viewport (innerWidth) widens with the
    content, so only the root's client width tells a page that overflows from one that fits."""
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")


def pick(root, choice: str) -> None:
    """Tap a size's pill, as a person does (the radio inside it is invisible)."""
    root.locator("label.pill", has_text=re.compile(rf"^{re.escape(choice)}$")).click()


def launched(page) -> Desktop:
    """The desktop whose console the launcher opened."""
    page.wait_for_url(re.compile(r".*/desktops/\d+/console/$"), timeout=90_000)
    return Desktop.objects.get(pk=int(re.search(r"/desktops/(\d+)/console/", page.url)[1]))


def size_of(desktop: Desktop) -> tuple[int, int, int, str]:
    desktop.refresh_from_db()
    return desktop.vcpus, desktop.memory_mib, desktop.disk_gib, desktop.size_name


# --- every sizes page at both widths -------------------------------------------------------------


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_it_shows_the_size_picker_the_resize_panel_and_the_sizes_page_at_every_width(
    viewport, alice, sizes_world, browsers, base
):
    studio, lab, private = sizes_world["studio"], sizes_world["lab"], sizes_world["private"]
    browser = browsers(viewport)
    # The test driver keeps VMs per process: a console page the launch opens is refused (4409/4503).
    browser.expected.extend(["(code: 4409)", "(code: 4503)"])
    # The launcher: each card's picker opens to the named sizes and the custom numbers, all on screen
    member = browser.sign_in(alice.member.email)
    picker = open_picker(member, studio)
    assert picker.locator("label.pill").all_text_contents() == ["Default", "Small", "Large", "Custom"]
    pick(picker, "Large")
    assert picker.locator("[data-size-summary]").text_content() == "Large"
    assert picker.locator("[data-size-shape]").text_content() == "4 vCPU · 8 GiB RAM · 40 GiB disk"
    pick(open_picker(member, lab), "Custom")
    for field in ("vcpus", "memory_mib", "disk_gib"):
        box = member.locator(f'[data-template-card="{lab.pk}"] [data-size-field="{field}"]').bounding_box()
        assert box and box["width"] >= 60, (field, box)
    assert member.locator(f'[data-testid="launch-{lab.pk}"]').is_visible()
    assert fits_the_screen(member), f"the launcher scrolls sideways at {viewport} size"
    shot(browser, member, "launcher")

    # A stopped desktop's page: the resize panel with its choices and what happens to the disk
    desktop = DesktopFactory(world=alice, template=studio, state=DesktopState.STOPPED, lived_in=True)
    member.goto(f"{base}/desktops/{desktop.pk}/")
    panel = member.locator('[data-testid="resize-panel"]')
    panel.wait_for()
    assert "A disk grown while the desktop runs is usable after its next restart." in panel.text_content()
    assert member.locator('[data-testid="resize-submit"]').is_visible()
    assert fits_the_screen(member), f"the desktop page scrolls sideways at {viewport} size"
    shot(browser, member, "resize")

    # The admin's sizes page of a private template
    admin = browser.sign_in(alice.admin.email)
    admin.goto(f"{base}/manage/templates/{private.pk}/sizes/")
    admin.locator('[data-testid="named-sizes"]').wait_for()
    assert admin.locator('[data-testid="add-size"]').is_visible()
    assert fits_the_screen(admin), f"the sizes page scrolls sideways at {viewport} size"
    shot(browser, admin, "manage-sizes")


# --- a person launches and resizes at phone width ----------------------------------------------------


def test_it_launches_a_named_and_a_custom_size_from_a_phone(alice, sizes_world, processes, browsers):
    studio, lab = sizes_world["studio"], sizes_world["lab"]
    processes.worker()
    phone = browsers("phone")
    # The test driver keeps VMs per process: a console page the launch opens is refused (4409/4503).
    phone.expected.extend(["(code: 4409)", "(code: 4503)"])
    page = phone.sign_in(alice.member.email)
    # When the member opens Studio's sizes and taps Large, then Launch
    pick(open_picker(page, studio), "Large")
    page.click(f'[data-testid="launch-{studio.pk}"]')
    # Then the console opens on a desktop of Large's size
    large = launched(page)
    assert size_of(large) == (4, 8192, 40, "Large")
    assert large.state == DesktopState.RUNNING and large.template_id == studio.pk

    # When, back on the launcher, they ask Lab for more than it allows, the card says why and nothing launches
    page.goto(phone.base + "/")
    picker = open_picker(page, lab)
    pick(picker, "Custom")
    picker.locator('[data-size-field="vcpus"]').fill("12")
    page.click(f'[data-testid="launch-{lab.pk}"]')
    error = page.locator(f'[data-testid="launch-error-{lab.pk}"]')
    error.wait_for()
    assert error.text_content() == "12 vCPU is outside what this template allows for vCPUs: 1 vCPU to 6 vCPU."
    assert error.is_visible() and fits_the_screen(page)
    shot(phone, page, "launch-refused")
    assert not Desktop.objects.filter(template=lab).exists()
    # When they type 3 vCPUs, 3 GiB RAM and a 30 GiB disk instead
    picker.locator('[data-size-field="vcpus"]').fill("3")
    picker.locator('[data-size-field="memory_mib"]').fill("3")
    picker.locator('[data-size-field="disk_gib"]').fill("30")
    page.click(f'[data-testid="launch-{lab.pk}"]')
    # Then the desktop launched has exactly that size
    custom = launched(page)
    assert size_of(custom) == (3, 3072, 30, "")
    assert custom.template_id == lab.pk


def test_it_resizes_a_stopped_desktop_from_its_page_on_a_phone(alice, sizes_world, processes, browsers, base):
    studio = sizes_world["studio"]
    processes.worker()
    phone = browsers("phone")
    # The test driver keeps VMs per process: a console page the launch opens is refused (4409/4503).
    phone.expected.extend(["(code: 4409)", "(code: 4503)"])
    page = phone.sign_in(alice.member.email)
    # Given the member's Studio desktop at its default size, stopped from the launcher
    page.click(f'[data-testid="launch-{studio.pk}"]')
    desktop = launched(page)
    page.goto(f"{base}/")
    page.click(f'[data-testid="stop-{desktop.pk}"]')
    page.click('[data-testid="confirm-ok"]')
    page.locator(f'[data-testid="state-{desktop.pk}"]', has_text="Stopped").wait_for(timeout=90_000)
    # When they open its page, the size panel says what it has and what resizing does
    page.goto(f"{base}/desktops/{desktop.pk}/")
    form = page.locator('[data-testid="resize-form"]')
    assert page.locator('[data-testid="resize-now"]').text_content() == "2 vCPU / 2 GiB RAM / 20 GiB"
    assert "usable after its next restart" in page.locator('[data-testid="resize-notes"]').text_content()
    # And asking for the size it has already is refused in words, in the form
    form.locator('[data-testid="resize-submit"]').click()
    problem = page.locator('[data-testid="resize-error"]')
    problem.wait_for()
    assert problem.text_content() == "Studio already has 2 vCPU / 2 GiB RAM / 20 GiB."
    # When they tap Small and Resize, the page comes back at Small's size
    pick(form, "Small")
    assert form.locator("[data-size-shape]").text_content() == "1 vCPU · 1 GiB RAM · 20 GiB disk"
    form.locator('[data-testid="resize-submit"]').click()
    page.locator('[data-testid="resize-now"]', has_text="Small").wait_for(timeout=60_000)
    assert size_of(desktop) == (1, 1024, 20, "Small")
    assert page.locator('[data-testid="detail-size"]').text_content() == "Small: 1 vCPU · 1 GiB RAM · 20 GiB disk"
    # When they choose Custom and type 4 vCPUs and 6 GiB, the desktop gets exactly that
    form = page.locator('[data-testid="resize-form"]')
    pick(form, "Custom")
    form.locator('[data-size-field="vcpus"]').fill("4")
    form.locator('[data-size-field="memory_mib"]').fill("6")
    assert fits_the_screen(page)
    shot(phone, page, "resize-custom")
    form.locator('[data-testid="resize-submit"]').click()
    page.locator('[data-testid="resize-now"]', has_text="4 vCPU / 6 GiB RAM / 20 GiB").wait_for(timeout=60_000)
    assert size_of(desktop) == (4, 6144, 20, "")
    assert desktop.state == DesktopState.STOPPED


# --- an admin sets a template's sizes at phone width -----------------------------------------------


def test_it_manages_a_private_templates_sizes_from_a_phone(alice, sizes_world, browsers, base):
    private = sizes_world["private"]
    big = TemplateSize.objects.get(template=private, name="Big")
    phone = browsers("phone")
    # The test driver keeps VMs per process: a console page the launch opens is refused (4409/4503).
    phone.expected.extend(["(code: 4409)", "(code: 4503)"])
    page = phone.sign_in(alice.admin.email)
    # The admin finds the sizes page from the templates list
    page.goto(f"{base}/manage/templates/")
    page.click(f'[data-testid="sizes-{private.pk}"]')
    page.wait_for_url(f"{base}/manage/templates/{private.pk}/sizes/")
    # Adds Huge
    form = page.locator('[data-testid="size-form"]')
    form.locator("input[name=name]").fill("Huge")
    form.locator("input[name=vcpus]").fill("16")
    form.locator("input[name=memory_mib]").fill("32768")
    form.locator("input[name=disk_gib]").fill("120")
    form.locator('[data-testid="add-size"]').click()
    page.locator(".message", has_text="Size Huge added").wait_for()
    huge = TemplateSize.objects.get(template=private, name="Huge")
    assert (huge.vcpus, huge.memory_mib, huge.disk_gib) == (16, 32768, 120)
    assert "16 vCPU" in page.locator(f'[data-size="{huge.pk}"]').text_content()
    # A second "big" is refused in the form, which keeps what was typed
    form = page.locator('[data-testid="size-form"]')
    form.locator("input[name=name]").fill("big")
    form.locator('[data-testid="add-size"]').click()
    refusal = page.locator('[data-testid="size-form"] .errorlist')
    refusal.wait_for()
    assert refusal.text_content() == "Research workstation already has a size named 'big'."
    assert page.locator('[data-testid="size-form"] input[name=name]').input_value() == "big"
    assert fits_the_screen(page)
    shot(phone, page, "manage-sizes-refused")
    # Changes Huge on its own page
    page.goto(f"{base}/manage/templates/{private.pk}/sizes/")
    page.click(f'[data-testid="edit-size-{huge.pk}"]')
    page.locator("input[name=vcpus]").fill("12")
    page.click('[data-testid="save-size"]')
    page.locator(".message", has_text="Size Huge saved").wait_for()
    huge.refresh_from_db()
    assert huge.vcpus == 12
    # Removes Big, after saying yes
    page.click(f'[data-testid="delete-size-{big.pk}"]')
    page.click('[data-testid="confirm-ok"]')
    page.locator(".message", has_text="Size Big removed").wait_for()
    assert not TemplateSize.objects.filter(pk=big.pk).exists()
    # Opens custom sizes up to 16 vCPUs and lets only admins choose
    page.locator("input[name=max_vcpus]").fill("16")
    page.click('[data-testid="save-ranges"]')
    page.locator(".message", has_text="Ranges saved").wait_for()
    ranges = page.locator('[data-testid="ranges-now"]').text_content()
    assert ranges == "4\N{EN DASH}16 vCPU, 8 GiB RAM, 40 GiB disk"
    page.get_by_label("Tenant admins only").check()
    page.click('[data-testid="save-resize-policy"]')
    page.locator(".message", has_text="every template").wait_for()
    private.refresh_from_db()
    alice.tenant.refresh_from_db()
    assert (private.max_vcpus, alice.tenant.resize_policy) == (16, "admins")
    assert fits_the_screen(page)
    shot(phone, page, "manage-sizes-saved")
    # And the admin's launcher offers Huge on that template
    page.goto(f"{base}/")
    picker = open_picker(page, private)
    assert picker.locator("label.pill").all_text_contents() == ["Default", "Huge", "Custom"]
