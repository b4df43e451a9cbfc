"""The member portal: launcher cards, "my desktops" cards, a desktop's page, console preferences."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from desktops.choices import DesktopState, OperationKind
from desktops.models import Desktop
from desktops.services import preferences
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory, OperationFactory
from desktops.tests.page_world import populate
from quetzal.errors import ServiceError
from tenants.models import AuditEvent, User
from tests.fixtures import login_client


@pytest.fixture
def world(alice, image):
    return populate(alice, image)


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_it_shows_a_card_per_launchable_template_with_os_size_and_gpu(alice, bob, image, world):
    # Given two public templates, a GPU template private to alice, and one private to bob
    DesktopTemplateFactory(name="Bob's CAD", image=image, visibility="tenant", tenant=bob.tenant)
    page = html(login_client(alice.member, alice.tenant).get("/"))
    # Then alice's member sees each of alice's templates once, with its size and GPU
    assert page.count('data-template-card="') == 3
    assert "Windows 11 Pro" in page and "8 vCPU" in page and "16 GiB RAM" in page and "Shared GPU" in page
    assert f'data-testid="launch-{world["cad"].pk}"' in page
    # And bob's private template is not offered
    assert "Bob&#x27;s CAD" not in page and "Bob's CAD" not in page


def test_it_shows_the_price_per_hour_only_when_billing_is_on(alice, world, settings):
    client = login_client(alice.member, alice.tenant)
    assert "/hour" not in html(client.get("/"))
    settings.BILLING_ENABLED = True
    page = html(client.get("/"))
    assert f'data-testid="price-{world["windows"].pk}"' in page and "0.34" in page


def test_it_lists_only_the_persons_own_desktops(alice, world):
    page = html(login_client(alice.member, alice.tenant).get("/"))
    # alice's member holds two desktops; the admin's and the pool's are not on the member's page
    assert page.count('class="desktop-card ') == 2
    assert f'data-desktop="{world["mine"].pk}"' in page and f'data-desktop="{world["stopped"].pk}"' in page


def test_it_says_why_the_idle_policy_stopped_a_desktop(alice, world):
    page = html(login_client(alice.member, alice.tenant).get("/"))
    assert f'data-testid="reason-{world["stopped"].pk}"' in page
    assert "No keyboard or mouse input for 60 min" in page


def test_it_says_when_the_idle_action_will_hit_a_running_desktop(alice, world):
    # Given a desktop last used 20 minutes ago under a 60-minute idle timeout
    page = html(login_client(alice.member, alice.tenant).get("/"))
    # Then its card says it stops in about 40 minutes
    assert f'data-testid="idle-{world["mine"].pk}"' in page
    text = re.sub(r"<[^>]+>", "", page)
    assert "stops in 39 min" in text or "stops in 40 min" in text
    # And the "Still working?" warning waits in the card, hidden until five minutes before
    warning = re.search(rf'<div class="idle-warning"[^>]*data-testid="idle-warning-{world["mine"].pk}"[^>]*>', page)
    assert warning and " hidden" in warning.group(0)


def test_it_warns_before_an_idle_stop_and_never_counts_below_zero(alice, world):
    # Given the member's desktop whose idle time ran out a minute ago (the beat has not come yet)
    mine = world["mine"]
    Desktop.objects.filter(pk=mine.pk).update(last_activity_at=timezone.now() - timedelta(minutes=61))
    page = html(login_client(alice.member, alice.tenant).get("/"))
    text = re.sub(r"<[^>]+>", "", page)
    # Then the warning shows with its button, and the countdown says it is due, not "0 min"
    warning = re.search(rf'<div class="idle-warning"[^>]*data-testid="idle-warning-{mine.pk}"[^>]*>', page)
    assert warning and " hidden" not in warning.group(0)
    assert f'data-testid="keep-running-{mine.pk}"' in page
    assert "Still working?" in text and "stops any moment now" in text
    assert "in 0 min" not in text


def test_it_asks_before_actions_that_can_lose_data_and_not_before_the_others(alice, world):
    card = html(login_client(alice.member, alice.tenant).get(f"/desktops/{world['mine'].pk}/card/"))
    buttons = {
        re.search(r'data-action="([\w-]+)"', tag).group(1): tag
        for tag in re.findall(r"<button[^>]*data-action[^>]*>", card)
    }
    assert set(buttons) == {"stop", "reboot", "hibernate", "snapshot", "revert", "delete", "keep-running"}
    asking = {action for action, tag in buttons.items() if "data-confirm=" in tag}
    assert asking == {"stop", "reboot", "revert", "delete"}
    assert 'data-snapshot="before-upgrade"' in buttons["revert"]


def test_it_shows_the_operation_in_flight_so_a_reload_keeps_following_it(alice, world):
    operation = OperationFactory(desktop=world["stopped"], kind=OperationKind.START, step="booting")
    card = html(login_client(alice.member, alice.tenant).get(f"/desktops/{world['stopped'].pk}/card/"))
    assert f'data-operation="/api/v1/operations/{operation.pk}/"' in card
    assert "booting" in card and 'data-action="start"' not in card


def test_it_keeps_other_peoples_desktops_from_a_member(alice, world):
    client = login_client(alice.member, alice.tenant)
    admins = DesktopFactory(world=alice, template=world["ubuntu"], lived_in=True, user=alice.admin)
    assert client.get(f"/desktops/{admins.pk}/").status_code == 404
    assert client.get(f"/desktops/{admins.pk}/card/").status_code == 404


def test_it_shows_a_desktop_with_its_history_and_snapshots(alice, world):
    page = html(login_client(alice.member, alice.tenant).get(f"/desktops/{world['mine'].pk}/"))
    assert page.count("<tr><td>") == 4  # two starts and two stops
    assert "before-upgrade" in page and 'data-snapshot-action="revert"' in page


def test_it_lets_a_tenant_admin_open_a_members_desktop_page(alice, world):
    page = html(login_client(alice.admin, alice.tenant).get(f"/desktops/{world['mine'].pk}/"))
    assert alice.member.email in page


def test_it_shows_a_deleted_desktop_to_nobody(alice, world):
    world["mine"].state = DesktopState.DELETED
    world["mine"].save()
    assert login_client(alice.admin, alice.tenant).get(f"/desktops/{world['mine'].pk}/").status_code == 404


# --- console preferences ----------------------------------------------------------------------


def test_it_defaults_console_preferences_and_ignores_stale_values(alice):
    assert preferences.console_preferences(alice.member) == preferences.ConsolePreferences("fit", "balanced")
    alice.member.preferences = {"console": {"scaling": "zoom", "quality": "best"}}
    chosen = preferences.console_preferences(alice.member)
    assert (chosen.scaling, chosen.quality) == ("fit", "best")
    assert chosen.for_console() == {"scaling": "fit", "quality_level": 9, "compression_level": 0}


def test_it_stores_console_preferences_next_to_other_preferences(alice):
    # Given a person with an unrelated preference
    User.objects.filter(pk=alice.member.pk).update(preferences={"theme": "dark"})
    # When they save console preferences on the settings page
    client = login_client(alice.member, alice.tenant)
    response = client.post("/settings/", {"scaling": "remote", "quality": "low"})
    # Then both are kept, and the change is audited
    assert response.status_code == 302
    stored = User.objects.get(pk=alice.member.pk).preferences
    assert stored == {"theme": "dark", "console": {"scaling": "remote", "quality": "low"}}
    assert AuditEvent.objects.filter(action="user.preferences", actor=alice.member).exists()
    page = html(client.get("/settings/"))
    assert re.findall(r'value="(\w+)"[^>]* checked>', page) == ["remote", "low"]


def test_it_refuses_unknown_console_preferences(alice):
    response = login_client(alice.member, alice.tenant).post("/settings/", {"scaling": "huge", "quality": "low"})
    assert response.status_code == 400
    assert "console" not in User.objects.get(pk=alice.member.pk).preferences
    with pytest.raises(ServiceError):
        preferences.set_console_preferences(user=alice.member, scaling="fit", quality="ultra")


def test_it_puts_security_and_tokens_in_the_settings_tabs(alice):
    client = login_client(alice.member, alice.tenant)
    for path in ("/settings/", "/settings/security/", "/settings/tokens/"):
        page = html(client.get(path))
        assert 'href="/settings/security/"' in page and 'href="/settings/tokens/"' in page
        assert f'href="{path}" aria-current="page"' in page


def test_it_counts_running_desktops_against_the_persons_limit(alice, world):
    page = html(login_client(alice.member, alice.tenant).get("/"))
    text = re.sub(r"<[^>]+>", "", page)
    assert 'data-testid="running-limit"' in page and "1 of 2 running" in text


def test_it_says_how_long_a_desktop_has_been_up(alice, world):
    world["mine"].running_since = timezone.now() - timedelta(hours=3, minutes=7)
    world["mine"].save()
    page = html(login_client(alice.member, alice.tenant).get("/"))
    assert f'data-testid="uptime-{world["mine"].pk}">3 h 7 min<' in page


def test_it_labels_launch_buttons_by_what_a_click_will_do(alice, world):
    page = html(login_client(alice.member, alice.tenant).get("/"))
    labels = dict(
        re.findall(
            r'data-testid="launch-(\d+)"[^>]*>\s*<svg.*?</svg>\s*<span data-launch-label>(\w+)</span>', page, re.S
        )
    )
    assert labels == {
        str(world["ubuntu"].pk): "Open",
        str(world["windows"].pk): "Resume",
        str(world["cad"].pk): "Launch",
    }
