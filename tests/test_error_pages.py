"""The 400/403/404/500 pages are the portal's own, in the shared layout, and never fail themselves."""

from __future__ import annotations

from django.test import Client, RequestFactory

from quetzal.api import errors
from tests.fixtures import login_client


def test_it_answers_an_unknown_page_in_the_layout(alice):
    response = login_client(alice.member, alice.tenant).get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert 'data-testid="error-page"' in html and "This page does not exist" in html
    # The layout: the top bar with the person's menu and the tenant's name
    assert 'class="topbar"' in html and alice.tenant.name in html


def test_it_answers_a_forbidden_page_in_the_layout_naming_the_organisation(alice):
    response = login_client(alice.member, alice.tenant).get("/manage/")
    html = response.content.decode()
    assert response.status_code == 403
    assert "You do not have access to this page" in html and f"Your role in {alice.tenant.name}" in html


def test_it_answers_visitors_with_a_sign_in_link(db):
    response = Client().get("/no-such-page/")
    assert response.status_code == 404 and 'href="/accounts/login/"' in response.content.decode()


def test_it_answers_a_server_error_in_the_layout_without_the_request_context(db):
    request = RequestFactory().get("/somewhere/")
    response = errors.server_error(request)
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_it_falls_back_to_a_plain_page_when_the_layout_cannot_render(db, settings):
    # Given templates that cannot be found (a broken deployment)
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [], "APP_DIRS": False}]
    request = RequestFactory().get("/somewhere/")
    # When any error page is asked for, it still answers with its status and a way home
    for handler, status in ((errors.page_not_found, 404), (errors.permission_denied, 403), (errors.bad_request, 400)):
        response = handler(request, Exception("x"))
        assert response.status_code == status and 'href="/"' in response.content.decode()
    assert errors.server_error(request).status_code == 500


def test_it_keeps_json_errors_under_the_api(db):
    response = Client().get("/api/v1/no-such-thing/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
