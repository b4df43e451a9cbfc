"""The shipped Caddyfile in front of the production server works as the nginx config does: HTTPS with Django's one
HSTS header and secure cookies, plain HTTP sent to HTTPS, WebSockets upgraded for the portal's own origin only,
static files served, a non-default HTTPS port reaching Django in the Host header, and `manage.py doctor --url` passing
through it.

Caddy runs unprivileged on free loopback ports (global options the test adds before the shipped site), with the
test CA's certificate on the site's `tls` line; nothing else of the file changes (tests.reverse_proxy.render).
"""

from __future__ import annotations

import pytest

from tests import test_reverse_proxy as any_proxy
from tests.processes import ROOT, require_shared_services
from tests.reverse_proxy import PUBLIC_NAME, start_deployment
from tests.services import require_tool
from tests.test_reverse_proxy import _request

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


# What holds for any proxy in front, the nginx module's own tests, collected here too: pytest gives them this
# module's `deployment` (Caddy). Django's HSTS header alone (the Caddyfile's own used to replace it), HTTPS seen,
# secure cookies; the live socket for the portal's origin only; the Host header passed with its port (Caddy passes
# the client's Host unchanged by default); the doctor passing through.
test_the_sign_in_page_answers_over_https_with_hsts_and_secure_cookies = (
    any_proxy.test_the_sign_in_page_answers_over_https_with_hsts_and_secure_cookies
)
test_the_live_socket_upgrades_end_to_end_for_the_public_origin_only = (
    any_proxy.test_the_live_socket_upgrades_end_to_end_for_the_public_origin_only
)
test_a_non_default_port_reaches_django_in_the_host_header = (
    any_proxy.test_a_non_default_port_reaches_django_in_the_host_header
)
test_doctor_passes_through_the_proxy = any_proxy.test_doctor_passes_through_the_proxy


def test_plain_http_is_sent_to_https(deployment):
    status, headers, _ = _request(deployment, "GET", "/accounts/login/?next=/desktops/", tls=False)
    # Caddy's own permanent redirect (308 keeps the method), to the default HTTPS port as nginx's does
    assert status == 308
    assert dict(headers)["Location"] == f"https://{PUBLIC_NAME}/accounts/login/?next=/desktops/"


def test_static_files_are_served_through_the_proxy(deployment):
    status, headers, body = _request(deployment, "GET", "/static/css/quetzal.css", headers={"Accept-Encoding": ""})
    assert status == 200 and body == (ROOT / "static" / "css" / "quetzal.css").read_bytes()
    assert dict((k.lower(), v) for k, v in headers)["content-type"].startswith("text/css")
