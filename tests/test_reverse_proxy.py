"""The shipped nginx config in front of the production server works: HTTPS with HSTS and secure cookies, HTTP sent
to HTTPS, WebSockets upgraded for the portal's own origin only, a non-default HTTPS port reaching Django in the Host
header (sign-in, redirects and the socket's origin check work there), bodies limited, static files served, and
`manage.py doctor --url` passing through it and naming a proxy that drops X-Forwarded-Proto.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import ssl
import subprocess
import sys
import urllib.parse
from http.cookies import SimpleCookie

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from quetzal.server import free_port
from tenants.services.tokens import create_token
from tests.factories import PASSWORD
from tests.processes import ROOT, require_shared_services
from tests.reverse_proxy import DEPLOY, PUBLIC_NAME, Deployment, nginx_site, start_deployment, start_nginx
from tests.services import require_tool

# One stack (nginx + the production server) for the module, so its tests stay on one parallel worker.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("reverse_proxy")]


@pytest.fixture(scope="module")
def deployment(django_db_setup, tmp_path_factory):
    nginx = require_tool("nginx", "nginx-light")
    require_shared_services("the web server")
    stack = start_deployment(tmp_path_factory.mktemp("deployment"), nginx=nginx)
    try:
        yield stack
    finally:
        stack.stop()


def _request(deployment: Deployment, method: str, path: str, *, headers=None, body=None, tls=True, at=None):
    """One request to the proxy (or the one serving origin `at`), no redirects followed: (status, headers, body)."""
    origin = urllib.parse.urlsplit(at or (deployment.https if tls else deployment.http))
    if tls:
        context = ssl.create_default_context(cafile=str(deployment.ca))
        conn = http.client.HTTPSConnection(origin.hostname, origin.port, context=context, timeout=30)
    else:
        conn = http.client.HTTPConnection(origin.hostname, origin.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def _cookies(headers) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for name, value in headers:
        if name.lower() == "set-cookie":
            jar.load(value)
    return jar


def _sign_in(deployment: Deployment, email: str, *, at: str | None = None, next_url: str | None = None) -> str:
    """Sign in through the proxy (at origin `at`) as a browser would; the session cookie's value."""
    origin = at or deployment.https
    status, headers, page = _request(deployment, "GET", "/accounts/login/", at=origin)
    assert status == 200
    csrf = _cookies(headers)["csrftoken"].value
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    fields = {"login": email, "password": PASSWORD, "csrfmiddlewaretoken": token}
    if next_url is not None:
        fields["next"] = next_url
    status, headers, body = _request(
        deployment,
        "POST",
        "/accounts/login/",
        body=urllib.parse.urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf}",
            "Origin": origin,
            "Referer": f"{origin}/accounts/login/",
        },
        at=origin,
    )
    # Django's CSRF check passed (it answers 403 otherwise) and the person is signed in
    assert status == 302, (status, body[:500])
    if next_url is not None:
        # Followed only when it is this site: Django compares its host with the Host header, port included
        assert dict(headers)["Location"] == next_url
    session = _cookies(headers)["sessionid"]
    assert session["secure"] and session["httponly"]
    return session.value


def test_the_sign_in_page_answers_over_https_with_hsts_and_secure_cookies(deployment, alice):
    status, headers, page = _request(deployment, "GET", "/accounts/login/")
    assert status == 200 and b'name="password"' in page
    # One HSTS header, Django's, with the env's settings (production's defaults: a year, subdomains, preload)
    hsts = [value for name, value in headers if name.lower() == "strict-transport-security"]
    assert hsts == ["max-age=31536000; includeSubDomains; preload"]
    assert _cookies(headers)["csrftoken"]["secure"]
    # Django knows the request came over HTTPS: the proxy said so and SECURE_PROXY_SSL_HEADER trusts it
    status, _, body = _request(deployment, "GET", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok", "https": True}
    # And signing in sets a secure, HTTP-only session cookie (asserted in _sign_in)
    assert _sign_in(deployment, alice.member.email)


def test_plain_http_is_sent_to_https(deployment):
    status, headers, _ = _request(deployment, "GET", "/accounts/login/?next=/desktops/", tls=False)
    assert status == 301
    assert dict(headers)["Location"] == f"https://{PUBLIC_NAME}/accounts/login/?next=/desktops/"


def _live_socket(deployment: Deployment, *, origin: str, session: str, at: str | None = None):
    socket_url = (at or deployment.https).replace("https://", "wss://") + "/ws/live/"
    context = ssl.create_default_context(cafile=str(deployment.ca))
    return connect(
        socket_url, ssl=context, origin=origin, additional_headers={"Cookie": f"sessionid={session}"}, open_timeout=20
    )


def test_the_live_socket_upgrades_end_to_end_for_the_public_origin_only(deployment, alice):
    session = _sign_in(deployment, alice.admin.email)
    # When a signed-in admin's page opens the live socket from the portal's own origin
    with _live_socket(deployment, origin=deployment.https, session=session) as socket:
        socket.send(json.dumps({"subscribe": "tenant"}))
        # Then the subscription round-trips through nginx, uvicorn and the consumer
        assert json.loads(socket.recv(timeout=20)) == {"type": "subscribed", "topic": "tenant"}
    # When another site's page tries it with the same cookie, the handshake is refused
    with pytest.raises(InvalidStatus) as refused:
        _live_socket(deployment, origin="https://elsewhere.example", session=session)
    assert refused.value.response.status_code == 403


def test_a_non_default_port_reaches_django_in_the_host_header(deployment, alice, tmp_path):
    # Given the shipped proxy on another non-default port, an origin CSRF_TRUSTED_ORIGINS does not name: only the
    # Host header the proxy passes can tell Django that this port is its own site
    with deployment.another_proxy(tmp_path) as origin:
        assert origin not in deployment.env["CSRF_TRUSTED_ORIGINS"].split(",")
        # When a browser signs in there, asking to go on to a page of this origin
        session = _sign_in(deployment, alice.admin.email, at=origin, next_url=f"{origin}/desktops/")
        # Then Django's CSRF check took the form's Origin as its own, and sent the person on to that absolute URL
        # (both asserted in _sign_in); and the live socket's origin check lets the page's socket in
        with _live_socket(deployment, origin=origin, session=session, at=origin) as socket:
            socket.send(json.dumps({"subscribe": "tenant"}))
            assert json.loads(socket.recv(timeout=20)) == {"type": "subscribed", "topic": "tenant"}
        # And over HTTP/2, as browsers speak to the proxy (the Host then comes from the :authority pseudo-header): a
        # signed-in person asking for the sign-in page is sent on to the absolute URL of this origin
        curl = require_tool("curl", "curl")
        next_url = f"{origin}/desktops/"
        page = f"{origin}/accounts/login/?{urllib.parse.urlencode({'next': next_url})}"
        report = ["-o", "/dev/null", "-w", "%{http_version} %{redirect_url}"]
        done = subprocess.run(
            [curl, "--http2", "-sS", "--cacert", str(deployment.ca), *report, "-b", f"sessionid={session}", page],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.stdout == f"2 {next_url}", done.stdout + done.stderr
        # While a page on the same name but another port is another site to the socket
        with pytest.raises(InvalidStatus) as refused:
            _live_socket(deployment, origin=f"https://{PUBLIC_NAME}:1", session=session, at=origin)
        assert refused.value.response.status_code == 403


def test_request_bodies_are_limited_as_the_config_says(deployment, alice):
    megabytes = int(re.search(r"client_max_body_size (\d+)m;", (DEPLOY / "nginx" / "quetzal.conf").read_text())[1])
    _token, raw = create_token(membership=alice.member.memberships.get(tenant=alice.tenant), name="proxy")
    auth = {"Authorization": f"Bearer {raw}", "Content-Type": "application/json"}
    # A body over the proxy's limit is refused by nginx itself, before any of it is read or reaches Django
    status, _, body = _request(
        deployment, "POST", "/api/v1/desktops/", headers={**auth, "Content-Length": str(megabytes * 2**20 + 1)}
    )
    assert status == 413 and b"nginx" in body
    # One within it passes the proxy and meets Quetzal's own, smaller JSON limit (MAX_REQUEST_BODY_BYTES)
    padding = "x" * (2 * 2**20)
    status, _, body = _request(deployment, "POST", "/api/v1/desktops/", headers=auth, body=json.dumps({"p": padding}))
    assert status == 413 and json.loads(body)["code"] == "request_too_large", body[:300]


def test_static_files_are_served_through_the_proxy(deployment):
    status, headers, body = _request(deployment, "GET", "/static/css/quetzal.css")
    assert status == 200 and body == (ROOT / "static" / "css" / "quetzal.css").read_bytes()
    assert dict((k.lower(), v) for k, v in headers)["content-type"].startswith("text/css")


def _doctor(deployment: Deployment, url: str) -> subprocess.CompletedProcess:
    env = {**deployment.env, "SSL_CERT_FILE": str(deployment.ca)}  # the operator trusts their CA the same way
    command = [sys.executable, "manage.py", "doctor", "--skip-hosts", "--url", url]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def _proxy_without(deployment: Deployment, tmp_path, *fragments: str):
    """The shipped config in front of the same server, minus the lines holding `fragments`: its https URL."""
    http_port, https_port = free_port(), free_port()
    site = nginx_site(
        http_port=http_port,
        https_port=https_port,
        cert=deployment.cert,
        key=deployment.key,
        upstream_port=deployment.upstream_port,
    )
    lines = site.splitlines()
    kept = [line for line in lines if not any(fragment in line for fragment in fragments)]
    assert len(kept) == len(lines) - len(fragments), "each fragment names one line of the shipped config"
    proxy = start_nginx(require_tool("nginx", "nginx-light"), tmp_path / "broken", "\n".join(kept), https_port)
    try:
        yield f"https://{PUBLIC_NAME}:{https_port}"
    finally:
        proxy.stop()


def test_doctor_passes_through_the_proxy(deployment):
    # When the doctor checks the deployment through its proxy
    done = _doctor(deployment, deployment.https)
    # Then it passes, having seen HTTPS reach Django and a WebSocket upgrade through
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   url: the proxy tells Django the request came over HTTPS" in done.stdout
    assert f"ok   websocket: wss://{PUBLIC_NAME}:" in done.stdout


def test_doctor_names_a_proxy_that_drops_the_scheme(deployment, tmp_path):
    # When the proxy in front is the shipped config without its X-Forwarded-Proto line
    with _proxy_without(deployment, tmp_path, "X-Forwarded-Proto $scheme") as url:
        done = _doctor(deployment, url)
    # Then the doctor fails with one line that names the header
    assert done.returncode != 0
    assert f"FAIL url: {url}/healthz redirects to itself: the proxy does not pass X-Forwarded-Proto" in done.stdout


def test_doctor_names_a_proxy_that_drops_the_upgrade(deployment, tmp_path):
    # When the proxy passes the scheme but not the WebSocket upgrade
    with _proxy_without(deployment, tmp_path, "Upgrade $http_upgrade", "Connection $connection_upgrade") as url:
        done = _doctor(deployment, url)
    # Then pages pass and the socket check fails, saying what the proxy must forward
    assert done.returncode != 0
    assert "ok   url: the proxy tells Django the request came over HTTPS" in done.stdout
    assert f"FAIL websocket: wss://{PUBLIC_NAME}:" in done.stdout
    assert "the proxy does not forward the upgrade" in done.stdout
