"""With ADMIN_REQUIRE_2FA on, an operator who has not entered a code gets no host figures: not on /metrics, not in
the host API, not on the live socket's operators topic; after the code, all three answer."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from desktops.metrics.tests.helpers import live_socket
from tests.factories import UserFactory
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db(transaction=True)
adb = database_sync_to_async


@pytest.fixture(autouse=True)
def operators_need_a_code(settings):
    settings.ADMIN_REQUIRE_2FA = True


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    await adb(connections.close_all)()


def _operator_client(*, entered_code: bool):
    staff = UserFactory(is_staff=True)
    client = login_client(staff)
    if entered_code:
        device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


def _headers(client) -> list[tuple[bytes, bytes]]:
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return [(b"origin", b"http://testserver"), (b"host", b"testserver"), (b"cookie", cookie.encode())]


async def _subscribe_operators(client) -> dict:
    socket = live_socket(_headers(client))
    connected, _ = await socket.connect()
    assert connected
    await socket.send_to(text_data=json.dumps({"subscribe": "operators"}))
    answer = json.loads(await socket.receive_from())
    await socket.disconnect()
    return answer


@pytest.mark.parametrize("entered_code", [False, True])
def test_it_shows_metrics_and_host_figures_only_after_the_code(entered_code, host):
    # Given an operator signed in with a password, with or without the second factor
    client = _operator_client(entered_code=entered_code)
    # Then /metrics and the host API answer only after the code
    metrics = client.get("/metrics")
    hosts = client.get(f"/api/v1/metrics/hosts/{host.pk}/")
    if entered_code:
        assert metrics.status_code == 200 and hosts.status_code == 200
    else:
        assert metrics.status_code == 403 and metrics.json()["code"] == "forbidden"
        assert hosts.status_code == 404


@pytest.mark.parametrize("entered_code", [False, True])
async def test_it_gives_the_operators_topic_only_after_the_code(entered_code):
    client = await adb(_operator_client)(entered_code=entered_code)
    answer = await _subscribe_operators(client)
    if entered_code:
        assert answer["type"] == "subscribed"
    else:
        assert answer["code"] == "forbidden"
