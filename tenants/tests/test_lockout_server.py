"""The lockout holds on the production ASGI server too: uvicorn must not take X-Forwarded-For from a local caller."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from quetzal.server import asgi_server_command
from tests.factories import PASSWORD
from tests.services import port_open, require

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    require(connection.vendor == "postgresql", "PostgreSQL (the server process shares the test database)")
    db = connection.settings_dict
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="quetzal.settings.base",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        QUETZAL_VAR_DIR=str(tmp_path / "var"),
        PASSWORD_HASHERS=",".join(settings.PASSWORD_HASHERS),
        LOGIN_FAILURE_LIMIT="3",
        TRUSTED_PROXY_COUNT="0",
    )
    port = _free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            asgi_server_command("127.0.0.1", port, quiet=True), cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None and port_open("127.0.0.1", port), log_path.read_text()[-3000:]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(15)


def _post_login(base: str, email: str, password: str, forwarded: str) -> int:
    """GET the form (for its CSRF token), then POST it with a forged X-Forwarded-For, as a script would."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirects())
    page = opener.open(f"{base}/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"login": email, "password": password, "csrfmiddlewaretoken": token}).encode()
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=body, headers={"X-Forwarded-For": forwarded, "Referer": f"{base}/"}
    )
    try:
        return opener.open(request).status
    except urllib.error.HTTPError as error:
        return error.code


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_it_keeps_counting_when_each_attempt_forges_another_address(alice, server):
    # Given three wrong passwords, each claiming another client address in X-Forwarded-For
    statuses = [_post_login(server, alice.member.email, "wrong password", f"10.7.7.{n}") for n in range(3)]
    # Then the third is the lockout, and a fourth forged address with the right password is still refused
    assert statuses[-1] == 429, statuses
    assert _post_login(server, alice.member.email, PASSWORD, "10.7.7.99") == 429
    # And a colleague on the same machine signs in to their own account
    assert _post_login(server, alice.admin.email, PASSWORD, "10.7.7.100") == 302
