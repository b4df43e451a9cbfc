"""The file manager API: chunked upload, download, errors with stable codes, tenant and person scoping."""

from __future__ import annotations

import hashlib
import os

import pytest

from desktops.models import HomeDisk
from desktops.tests.factories import HomeDiskFactory
from quetzal.celery import app as celery_app
from tests.fixtures import api_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def eager(settings, tmp_path):
    settings.HOME_SPOOL_DIR = tmp_path / "spool"
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _put(client, upload_id: str, offset: int, data: bytes):
    return client.generic(
        "PUT", f"/api/v1/files/uploads/{upload_id}/?offset={offset}", data, content_type="application/octet-stream"
    )


def upload(client, path: str, data: bytes, chunk: int = 1 << 20) -> dict:
    begun = client.post("/api/v1/files/uploads/", {"path": path, "size": len(data)}, format="json")
    assert begun.status_code == 201, begun.json()
    upload_id = begun.json()["id"]
    for offset in range(0, len(data), chunk):
        assert _put(client, upload_id, offset, data[offset : offset + chunk]).status_code == 200
    finished = client.post(f"/api/v1/files/uploads/{upload_id}/finish/")
    assert finished.status_code == 201, finished.json()
    return finished.json()


def test_it_uploads_in_chunks_and_downloads_the_same_bytes(alice):
    HomeDiskFactory(world=alice)
    client = api_client(alice.member, alice.tenant)
    data = os.urandom(2 * 1024 * 1024 + 5)
    assert upload(client, "photo.raw", data)["via"] == "host"
    response = client.get("/api/v1/files/download/", {"path": "photo.raw"})
    assert response.status_code == 200
    assert 'filename="photo.raw"' in response["Content-Disposition"]
    assert hashlib.sha256(b"".join(response.streaming_content)).digest() == hashlib.sha256(data).digest()


def test_it_answers_a_resumed_upload_with_what_has_arrived(alice):
    HomeDiskFactory(world=alice)
    client = api_client(alice.member, alice.tenant)
    upload_id = client.post("/api/v1/files/uploads/", {"path": "r.bin", "size": 8}, format="json").json()["id"]
    _put(client, upload_id, 0, b"1234")
    # The client lost track: it asks, then goes on from there
    assert client.get(f"/api/v1/files/uploads/{upload_id}/").json()["received"] == 4
    wrong = _put(client, upload_id, 0, b"1234")
    assert wrong.status_code == 409 and wrong.json()["code"] == "wrong_offset"
    assert _put(client, upload_id, 4, b"5678").json()["received"] == 8


def test_it_creates_the_home_on_first_visit_with_the_tenants_size(alice, host):
    alice.tenant.home_disk_gib = 3
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    # libvirt's test driver keeps no file on this machine: the row exists, the host side says why it cannot work
    response = client.get("/api/v1/files/")
    assert HomeDisk.objects.get(user=alice.member).size_gib == 3
    assert response.status_code == 409 and response.json()["code"] == "home_unreachable"


def test_it_refuses_bad_input_with_stable_codes_and_no_500(alice):
    HomeDiskFactory(world=alice)
    client = api_client(alice.member, alice.tenant)
    cases = [
        (client.get("/api/v1/files/", {"path": "../x"}), 400, "invalid_path"),
        (client.get("/api/v1/files/", {"path": "/etc"}), 400, "invalid_path"),
        (client.post("/api/v1/files/folders/", {"path": "a\x01b"}, format="json"), 400, "invalid"),
        (client.post("/api/v1/files/uploads/", {"path": "x", "size": -1}, format="json"), 400, "invalid"),
        (client.post("/api/v1/files/uploads/", {"path": "x", "size": 2**31}, format="json"), 400, "invalid"),
        (client.get("/api/v1/files/download/", {"path": "missing"}), 404, "file_not_found"),
        (client.post("/api/v1/files/delete/", {"path": ""}, format="json"), 400, "invalid_path"),
        (client.get("/api/v1/files/uploads/00000000-0000-0000-0000-000000000000/"), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.json()


def test_it_refuses_a_chunk_over_the_limit(alice):
    HomeDiskFactory(world=alice)
    client = api_client(alice.member, alice.tenant)
    upload_id = client.post("/api/v1/files/uploads/", {"path": "b", "size": 9 << 20}, format="json").json()["id"]
    response = _put(client, upload_id, 0, b"\0" * (9 << 20))
    assert response.status_code == 413 and response.json()["code"] == "chunk_too_large"


def test_it_keeps_each_person_in_their_own_home(alice, bob):
    HomeDiskFactory(world=alice)
    HomeDiskFactory(world=alice, user=alice.admin)
    HomeDiskFactory(world=bob)
    upload(api_client(alice.member, alice.tenant), "mine.txt", b"secret")
    # The tenant's admin, without the policy: another member's home is a 404
    admin = api_client(alice.admin, alice.tenant)
    assert admin.get("/api/v1/files/", {"owner": alice.member.pk}).status_code == 404
    # Another tenant's admin, even with the policy on in their tenant: a 404 too
    bob.tenant.allow_admin_file_access = True
    bob.tenant.save()
    other = api_client(bob.admin, bob.tenant)
    assert other.get("/api/v1/files/", {"owner": alice.member.pk}).status_code == 404
    assert other.get("/api/v1/files/download/", {"path": "mine.txt", "owner": alice.member.pk}).status_code == 404
    # And the admin's own home does not show the member's file
    assert "mine.txt" not in [e["name"] for e in admin.get("/api/v1/files/").json()["entries"]]


def test_it_lets_an_admin_in_where_the_policy_allows_it(alice):
    HomeDiskFactory(world=alice)
    upload(api_client(alice.member, alice.tenant), "mine.txt", b"secret")
    alice.tenant.allow_admin_file_access = True
    alice.tenant.save()
    admin = api_client(alice.admin, alice.tenant)
    listing = admin.get("/api/v1/files/", {"owner": alice.member.pk})
    assert listing.status_code == 200 and [e["name"] for e in listing.json()["entries"]] == ["mine.txt"]
