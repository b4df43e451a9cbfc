"""The metrics package speaks the person's language: its names, choices and every refusal it answers."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.test import Client
from django.utils import translation

from desktops.metrics.choices import Resolution
from desktops.metrics.models import DesktopRollup, HostSample
from desktops.metrics.tests.helpers import live_socket, session_headers
from desktops.tests.factories import DesktopFactory
from tests.fixtures import api_client

GERMAN = {"HTTP_ACCEPT_LANGUAGE": "de-DE,de;q=0.9"}


def test_it_names_its_models_fields_and_choices_in_german():
    with translation.override("de"):
        assert str(DesktopRollup._meta.verbose_name_plural) == "Desktop-Zusammenfassungen"
        assert str(DesktopRollup._meta.get_field("resolution").verbose_name) == "Auflösung"
        assert str(Resolution.HOUR.label) == "Pro Stunde"
        assert str(HostSample._meta.get_field("desktops").help_text) == "Desktops mit laufender VM."
    # And in English where the person reads English
    with translation.override("en"):
        assert str(DesktopRollup._meta.get_field("resolution").verbose_name) == "resolution"


def test_it_refuses_an_unknown_range_in_german_with_the_same_code(alice, host, template):
    desk = DesktopFactory(world=alice, template=template, host=host)
    client = api_client(alice.member, alice.tenant)
    german = client.get(f"/api/v1/desktops/{desk.pk}/metrics/", {"range": "2y"}, **GERMAN)
    assert german.status_code == 400 and german.json()["code"] == "invalid_range"
    assert "Unbekannter Zeitraum 2y; verwenden Sie einen von 15m, 1h" in german.json()["detail"]
    english = client.get(f"/api/v1/desktops/{desk.pk}/metrics/", {"range": "2y"}, HTTP_ACCEPT_LANGUAGE="en")
    assert "Unknown range 2y; use one of 15m, 1h" in english.json()["detail"]


def test_the_prometheus_endpoint_refuses_in_german(db):
    response = Client().get("/metrics", **GERMAN)
    assert response.status_code == 401 and response.json() == {
        "code": "not_authenticated",
        "detail": "Melden Sie sich als Betreiber an oder legen Sie das Kennzahlen-Token vor.",
    }


@pytest.mark.django_db(transaction=True)
async def test_the_live_socket_refuses_in_the_pages_language(alice, bob, template):
    desk = await database_sync_to_async(DesktopFactory)(world=alice, template=template)
    try:
        for language, words in (("de-DE,de;q=0.9", "Kein solcher Desktop."), ("en", "No such desktop.")):
            headers = await database_sync_to_async(session_headers)(bob.member, bob.tenant)
            socket = live_socket([*headers, (b"accept-language", language.encode())])
            assert (await socket.connect())[0]
            # When bob asks for alice's desktop
            await socket.send_to(text_data=json.dumps({"subscribe": f"desktop:{desk.pk}"}))
            refusal = json.loads(await socket.receive_from())
            # Then the code is the same in every language and the words are the page's
            assert (refusal["code"], refusal["detail"]) == ("not_found", words)
            await socket.disconnect()
    finally:
        await database_sync_to_async(connections.close_all)()
