"""The 400/403/404/500/503 pages are the portal's own, in the shared layout, and never fail themselves."""

from __future__ import annotations

import socket

import pytest
from django.db import connections
from django.test import Client, RequestFactory

from quetzal.api import errors
from tests.fixtures import login_client
from tests.services import require


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


@pytest.fixture
def unreachable_database(transactional_db):
    """The real PostgreSQL connection pointed at a port nothing listens on, as when the server refuses connections.

    PostgreSQL only: Django keeps SQLite's in-memory test database open whatever close() is asked.
    """
    require(connections["default"].vendor == "postgresql", "PostgreSQL (a server that can refuse connections)")
    connection = connections["default"]
    connection.close()
    saved = connection.settings_dict["PORT"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        connection.settings_dict["PORT"] = str(probe.getsockname()[1])  # closed again before anyone connects
    yield
    connection.close()
    connection.settings_dict["PORT"] = saved


@pytest.mark.parametrize("credential", ["token", "session"])
def test_it_answers_busy_in_json_with_retry_after_when_the_database_refuses(unreachable_database, credential):
    # When the database cannot be reached, whether the token lookup or the session meets it first
    client = Client(raise_request_exception=False)
    headers = {"HTTP_AUTHORIZATION": "Bearer qz_anything"} if credential == "token" else {}
    if credential == "session":
        client.cookies["sessionid"] = "a-session-the-database-would-be-asked-for"
    response = client.get("/api/v1/templates/", **headers)
    # Then the caller is told to come back, in the API's shape, never a 500
    assert response.status_code == 503 and response["Retry-After"] == str(errors.BUSY_RETRY_AFTER_S)
    assert response.json()["code"] == "service_busy"


def test_it_answers_a_page_with_the_busy_page_when_the_database_refuses(unreachable_database):
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "a-session-the-database-would-be-asked-for"
    response = client.get("/")
    assert response.status_code == 503 and response["Retry-After"] == str(errors.BUSY_RETRY_AFTER_S)
    assert "Quetzal is busy right now" in response.content.decode()
