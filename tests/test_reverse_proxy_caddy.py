"""The shipped Caddyfile in front of the production server works as the nginx config does: HTTPS with Django's one
HSTS header and secure cookies, plain HTTP sent to HTTPS, WebSockets upgraded for the portal's own origin only,
static files served, and `manage.py doctor --url` passing through it.

Caddy runs unprivileged on free loopback ports (global options the test adds before the shipped site), with the
test CA's certificate on the site's `tls` line; nothing else of the file changes (tests.reverse_proxy.render).
"""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.processes import ROOT, require_shared_services
from tests.reverse_proxy import PUBLIC_NAME, start_deployment
from tests.services import require_tool
from tests.test_reverse_proxy import _cookies, _doctor, _live_socket, _request, _sign_in

# One stack (Caddy + the production server) for the module, so its tests stay on one parallel worker.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("reverse_proxy_caddy")]


@pytest.fixture(scope="module")
def deployment(django_db_setup, tmp_path_factory):
    caddy = require_tool("caddy", "caddy")
    require_shared_services("the web server")
    stack = start_deployment(tmp_path_factory.mktemp("caddy-deployment"), caddy=caddy)
    try:
        yield stack
    finally:
        stack.stop()


def test_the_sign_in_page_answers_over_https_with_one_hsts_header_and_secure_cookies(deployment, alice):
    status, headers, page = _request(deployment, "GET", "/accounts/login/")
    assert status == 200 and b'name="password"' in page
    # Django's HSTS header alone, with the env's settings: the Caddyfile's own used to replace it
    hsts = [value for name, value in headers if name.lower() == "strict-transport-security"]
    assert hsts == ["max-age=31536000; includeSubDomains; preload"]
    assert _cookies(headers)["csrftoken"]["secure"]
    # Caddy tells Django the request came over HTTPS
    status, _, body = _request(deployment, "GET", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok", "https": True}
    assert _sign_in(deployment, alice.member.email)


def test_plain_http_is_sent_to_https(deployment):
    status, headers, _ = _request(deployment, "GET", "/accounts/login/?next=/desktops/", tls=False)
    # Caddy's own permanent redirect (308 keeps the method), to the default HTTPS port as nginx's does
    assert status == 308
    assert dict(headers)["Location"] == f"https://{PUBLIC_NAME}/accounts/login/?next=/desktops/"


def test_the_live_socket_upgrades_end_to_end_for_the_public_origin_only(deployment, alice):
    session = _sign_in(deployment, alice.admin.email)
    with _live_socket(deployment, origin=deployment.https, session=session) as socket:
        socket.send(json.dumps({"subscribe": "tenant"}))
        assert json.loads(socket.recv(timeout=20)) == {"type": "subscribed", "topic": "tenant"}
    with pytest.raises(InvalidStatus) as refused:
        _live_socket(deployment, origin="https://elsewhere.example", session=session)
    assert refused.value.response.status_code == 403


def test_static_files_are_served_through_the_proxy(deployment):
    status, headers, body = _request(deployment, "GET", "/static/css/quetzal.css", headers={"Accept-Encoding": ""})
    assert status == 200 and body == (ROOT / "static" / "css" / "quetzal.css").read_bytes()
    assert dict((k.lower(), v) for k, v in headers)["content-type"].startswith("text/css")


def test_doctor_passes_through_the_proxy(deployment):
    done = _doctor(deployment, deployment.https)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   url: the proxy tells Django the request came over HTTPS" in done.stdout
    assert f"ok   websocket: wss://{PUBLIC_NAME}:" in done.stdout
