"""Help per audience, linked from the layout; first-run hints on an empty launcher and an empty admin console."""

from __future__ import annotations

import pytest
from django.test import Client

from desktops.tests.factories import DesktopFactory
from tests.fixtures import login_client


@pytest.mark.parametrize(
    ("path", "audience"), [("/help/", "members"), ("/help/admins/", "admins"), ("/help/operators/", "operators")]
)
def test_it_has_a_help_page_per_audience(db, path, audience):
    response = Client().get(path)
    assert response.status_code == 200
    assert f'data-testid="help-{audience}"' in response.content.decode()


def test_it_answers_an_unknown_audience_with_the_not_found_page(db):
    response = Client().get("/help/nobody/")
    assert response.status_code == 404 and b'data-testid="error-page"' in response.content


def test_it_links_each_person_to_the_help_for_their_role(alice):
    member = login_client(alice.member, alice.tenant).get("/").content.decode()
    admin = login_client(alice.admin, alice.tenant).get("/").content.decode()
    assert 'href="/help/" data-testid="menu-help"' in member
    assert 'href="/help/admins/" data-testid="menu-help"' in admin


def test_it_shows_first_run_hints_only_while_nothing_exists(alice, template):
    # Given a tenant with nobody's desktop yet
    member, admin = login_client(alice.member, alice.tenant), login_client(alice.admin, alice.tenant)
    launcher = member.get("/").content.decode()
    assert 'data-testid="my-desktops-empty">' in launcher  # shown (no hidden attribute)
    assert 'data-testid="first-run-hint"' in admin.get("/manage/").content.decode()
    # When a desktop exists, both hints give way
    DesktopFactory(world=alice, template=template)
    assert 'data-testid="my-desktops-empty" hidden' in member.get("/").content.decode()
    assert 'data-testid="first-run-hint"' not in admin.get("/manage/").content.decode()
