"""A person the directory deactivates over SCIM loses their open sockets at once (real WebSocket clients through the
whole ASGI stack, the deactivation through the SCIM service)."""

from __future__ import annotations

import pytest

from desktops.console.tests.fixtures import adb, browser, thread_connections_fixture  # noqa: F401 (fixtures)
from tenants.channels import ACCESS_CHANGED, SIGNED_OUT
from tenants.scim import provisioning, services
from tests.sockets import Communicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("thread_connections")]
WITHIN_S = 5
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def _live(who) -> Communicator:
    from quetzal.asgi import application

    client = Communicator(application, "/ws/live/", headers=who.headers())
    connected, _ = await client.connect(timeout=10)
    assert connected
    return client


async def _closed_with(client: Communicator) -> int:
    while True:
        message = await client.receive_output(WITHIN_S)
        if message["type"] == "websocket.close":
            return message["code"]


async def test_it_closes_the_sockets_of_someone_the_directory_deactivates(alice):
    # Given alice's member, provisioned by her directory, with the portal open
    directory = await adb(services.directory_of)(alice.tenant)
    payload = {"userName": alice.member.email}
    person = await adb(provisioning.create_user)(directory=directory, payload=payload)
    member = await adb(browser)(alice.member, alice.tenant)
    socket = await _live(member)
    # When the directory deactivates them as Entra ID does
    body = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    await adb(provisioning.patch_user)(directory=directory, scim_id=str(person.scim_id), payload=body)
    # Then the socket closes: access changed (membership gone) or signed out (session ended), whichever comes first
    assert await _closed_with(socket) in (ACCESS_CHANGED, SIGNED_OUT)
