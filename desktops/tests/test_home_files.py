"""The file manager's services from the host side: a real ext4 image, real debugfs, eager workers."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

import pytest

from desktops.models import HomeUpload
from desktops.services import files
from desktops.tests.factories import DesktopFactory, HomeDiskFactory, fsck_clean
from quetzal.celery import app as celery_app
from quetzal.errors import ServiceError
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def spool(settings, tmp_path):
    """The spool in a temp dir, and file work run in-process (the worker answering is eager Celery)."""
    settings.HOME_SPOOL_DIR = tmp_path / "spool"
    celery_app.conf.task_always_eager = True
    yield settings.HOME_SPOOL_DIR
    celery_app.conf.task_always_eager = False


def _upload(home, actor, path: str, data: bytes, chunk: int = 1 << 20):
    upload = files.begin_upload(home=home, path=path, size=len(data), actor=actor)
    for offset in range(0, len(data), chunk):
        piece = data[offset : offset + chunk]
        upload = files.receive_chunk(upload=upload, offset=offset, stream=io.BytesIO(piece), length=len(piece))
    return files.finish_upload(upload=upload, actor=actor)


def _download(home, actor, path: str) -> tuple[bytes, str]:
    chunks, name, _size = files.download(home=home, path=path, actor=actor)
    return b"".join(chunks), name


def test_it_uploads_in_chunks_and_downloads_the_same_bytes_from_the_host_side(alice, spool):
    # Given alice's member's home with no desktop attached
    home = HomeDiskFactory(world=alice)
    data = os.urandom(3 * 1024 * 1024 + 17)
    # When a file is uploaded in 1 MiB chunks into a new folder and downloaded again
    files.make_folder(home=home, path="docs")
    result = _upload(home, alice.member, "docs/report.bin", data)
    got, name = _download(home, alice.member, "docs/report.bin")
    # Then the host side wrote it, the bytes match, the spool is empty and the filesystem is clean
    assert result["via"] == "host" and name == "report.bin"
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert list(spool.iterdir()) == [] and not HomeUpload.objects.exists()
    assert fsck_clean(home.volume_path)
    # And the upload and download are audited
    actions = set(AuditEvent.objects.filter(tenant=alice.tenant).values_list("action", flat=True))
    assert {"files.upload", "files.download"} <= actions


def test_it_lists_renames_moves_and_deletes(alice, spool):
    home = HomeDiskFactory(world=alice)
    files.make_folder(home=home, path="a")
    files.make_folder(home=home, path="a/inner")
    _upload(home, alice.member, "a/inner/x.txt", b"hello")
    # When a folder is moved to another parent and a file renamed
    files.move(home=home, source="a/inner", dest="moved")
    files.move(home=home, source="moved/x.txt", dest="moved/y.txt")
    root = files.listing(home=home, path="")
    moved = files.listing(home=home, path="moved")
    # Then the listing shows it, with the space used against the disk's size
    assert [(e["name"], e["kind"]) for e in root["entries"]] == [("a", "dir"), ("moved", "dir")]
    assert [(e["name"], e["size"]) for e in moved["entries"]] == [("y.txt", 5)]
    assert 0 < root["used"] < root["total"]
    assert fsck_clean(home.volume_path)
    # When the folder is deleted with its content, it is gone and audited
    files.delete(home=home, path="moved", actor=alice.member)
    assert [e["name"] for e in files.listing(home=home, path="")["entries"]] == ["a"]
    assert AuditEvent.objects.filter(action="files.delete", data__path="moved").exists()
    assert fsck_clean(home.volume_path)


def test_it_downloads_a_folder_as_a_zip(alice, spool):
    home = HomeDiskFactory(world=alice)
    files.make_folder(home=home, path="f")
    files.make_folder(home=home, path="f/sub")
    _upload(home, alice.member, "f/one.txt", b"1")
    _upload(home, alice.member, "f/sub/two.txt", b"22")
    got, name = _download(home, alice.member, "f")
    archive = zipfile.ZipFile(io.BytesIO(got))
    assert name == "f.zip"
    assert {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")} == {
        "one.txt": b"1",
        "sub/two.txt": b"22",
    }


def test_it_leaves_no_half_file_under_the_final_name_when_an_upload_breaks_off(alice, spool):
    home = HomeDiskFactory(world=alice)
    _upload(home, alice.member, "keep.txt", b"old content")
    # Given an upload over keep.txt that stops after its first chunk
    upload = files.begin_upload(home=home, path="keep.txt", size=10, actor=alice.member)
    files.receive_chunk(upload=upload, offset=0, stream=io.BytesIO(b"new"), length=3)
    # When someone tries to finish it anyway
    with pytest.raises(ServiceError) as refused:
        files.finish_upload(upload=HomeUpload.objects.get(pk=upload.pk), actor=alice.member)
    # Then it is refused and the file under the final name is untouched
    assert refused.value.code == "upload_incomplete"
    assert _download(home, alice.member, "keep.txt")[0] == b"old content"


def test_it_resumes_an_upload_from_what_arrived(alice, spool):
    home = HomeDiskFactory(world=alice)
    upload = files.begin_upload(home=home, path="r.bin", size=6, actor=alice.member)
    files.receive_chunk(upload=upload, offset=0, stream=io.BytesIO(b"abc"), length=3)
    # A chunk sent again at a wrong offset is refused and says where to go on
    with pytest.raises(ServiceError) as refused:
        files.receive_chunk(upload=upload, offset=0, stream=io.BytesIO(b"abc"), length=3)
    assert refused.value.code == "wrong_offset" and "byte 3" in refused.value.detail
    files.receive_chunk(upload=upload, offset=3, stream=io.BytesIO(b"def"), length=3)
    files.finish_upload(upload=HomeUpload.objects.get(pk=upload.pk), actor=alice.member)
    assert _download(home, alice.member, "r.bin")[0] == b"abcdef"


def test_it_refuses_an_upload_larger_than_the_home(alice, spool):
    home = HomeDiskFactory(world=alice, size_gib=1)
    with pytest.raises(ServiceError) as refused:
        files.begin_upload(home=home, path="big.iso", size=2 * 1024**3, actor=alice.member)
    assert refused.value.code == "quota_home_full" and not HomeUpload.objects.exists()


def test_it_refuses_an_upload_beyond_the_free_space_of_the_disk(alice, spool):
    # Given a 64 MiB filesystem and a 70 MiB file (under the 1 GiB promised, over what the disk has)
    home = HomeDiskFactory(world=alice)
    with pytest.raises(ServiceError) as refused:
        _upload(home, alice.member, "too-big.bin", b"\0" * (70 * 1024 * 1024), chunk=8 * 1024 * 1024)
    assert refused.value.code == "quota_home_full" and refused.value.status == 409
    assert "too-big.bin" not in [e["name"] for e in files.listing(home=home, path="")["entries"]]
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("path", ["../etc", "a/../../b", "/etc/passwd", "a\x00b", "a/\x1bb", ".qz-partial-x"])
def test_it_refuses_unsafe_paths_with_a_stable_code(alice, spool, path):
    home = HomeDiskFactory(world=alice)
    with pytest.raises(ServiceError) as refused:
        files.make_folder(home=home, path=path)
    assert refused.value.code == "invalid_path" and refused.value.status == 400


def test_it_reports_a_missing_file_as_not_found(alice, spool):
    home = HomeDiskFactory(world=alice)
    with pytest.raises(ServiceError) as refused:
        files.download(home=home, path="nope.txt", actor=alice.member)
    assert refused.value.status == 404


def test_it_refuses_the_host_side_while_the_desktop_holding_the_home_is_starting(alice, spool):
    # Given a home held by a desktop on its way up: neither the guest nor the host may write now
    home = HomeDiskFactory(world=alice, attached_to=DesktopFactory(world=alice, state="starting"))
    with pytest.raises(ServiceError) as refused:
        files.listing(home=home, path="")
    assert refused.value.code == "home_busy" and refused.value.status == 409


def test_it_goes_to_the_host_side_when_the_desktop_holding_the_home_is_gone(alice, spool):
    # Given a stale claim (the desktop stopped without releasing it): the home is the host's again
    home = HomeDiskFactory(world=alice, attached_to=DesktopFactory(world=alice, state="stopped"))
    assert files.listing(home=home, path="")["via"] == "host"


def test_it_shows_a_person_only_their_own_home(alice, spool):
    HomeDiskFactory(world=alice)
    # An admin of the same tenant sees no member's home while the policy is off
    with pytest.raises(ServiceError) as refused:
        files.open_home(tenant=alice.tenant, actor=alice.admin, owner=alice.member)
    assert refused.value.status == 404


def test_it_lets_an_admin_open_a_members_home_when_the_policy_allows_it_audited(alice, spool):
    home = HomeDiskFactory(world=alice)
    alice.tenant.allow_admin_file_access = True
    alice.tenant.save()
    assert files.open_home(tenant=alice.tenant, actor=alice.admin, owner=alice.member) == home
    assert AuditEvent.objects.filter(action="files.admin_access", actor=alice.admin).exists()
    # A plain member may not, whatever the policy
    with pytest.raises(ServiceError):
        files.open_home(tenant=alice.tenant, actor=alice.owner and alice.member, owner=alice.admin)


def test_it_finds_no_home_of_another_tenants_person(alice, bob, spool):
    HomeDiskFactory(world=bob)
    bob.tenant.allow_admin_file_access = True
    bob.tenant.save()
    with pytest.raises(ServiceError) as refused:
        files.open_home(tenant=alice.tenant, actor=alice.admin, owner=bob.member)
    assert refused.value.status == 404
