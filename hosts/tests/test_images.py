"""Importing images: format checks, streaming checksum, and nothing kept when the checksum is wrong."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from hosts.errors import ChecksumMismatch, ImageExists, InvalidImage
from hosts.models import Image
from hosts.services import images
from hosts.tests.fakes import qcow2_bytes
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def raw_disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    # Spans several 1 MiB read chunks, so streaming is exercised.
    path.write_bytes(os.urandom(1024) * 3000)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_it_imports_a_disk_with_its_checksum(raw_disk):
    # given a raw disk and its published checksum (upper case, as some sites print it)
    expected = sha(raw_disk).upper()
    # when it is imported
    image = images.import_image(raw_disk, "Ubuntu", "raw", expected_sha256=expected)
    # then the image records the file, its size and checksum
    image.refresh_from_db()
    assert (image.name, image.format, image.source_path) == ("Ubuntu", "raw", str(raw_disk))
    assert image.sha256 == expected.lower()
    assert image.size_bytes == image.virtual_size_bytes == raw_disk.stat().st_size
    assert image.local_path == raw_disk
    assert AuditEvent.objects.filter(action="image.import").count() == 1


def test_it_refuses_a_checksum_mismatch_and_creates_nothing(raw_disk):
    # given a checksum of other content
    wrong = hashlib.sha256(b"something else").hexdigest()
    # when importing with it
    with pytest.raises(ChecksumMismatch) as caught:
        images.import_image(raw_disk, "Ubuntu", "raw", expected_sha256=wrong)
    # then the error names both checksums and nothing was created
    assert caught.value.code == "checksum_mismatch"
    assert wrong in caught.value.detail and sha(raw_disk) in caught.value.detail
    assert not Image.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="image.").exists()


def test_it_reads_the_virtual_size_of_a_qcow2(tmp_path):
    # given a qcow2 whose disk is 20 GiB
    path = tmp_path / "win.qcow2"
    path.write_bytes(qcow2_bytes(20 * 1024**3))
    # when imported, then the guest's size is known (linked clones must not be smaller)
    image = images.import_image(path, "Windows", "qcow2")
    assert image.virtual_size_bytes == 20 * 1024**3
    assert image.size_bytes == 4096


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        (b"plain bytes" * 100, "qcow2", "is not a qcow2 file"),
        (qcow2_bytes(1024**3), "raw", "is a qcow2 file; import it as qcow2"),
        (qcow2_bytes(1024**3, backing=True), "qcow2", "has a backing file"),
        (b"", "raw", "is empty"),
        (b"x" * 10, "vmdk", "Unknown image format"),
    ],
    ids=["raw-as-qcow2", "qcow2-as-raw", "backing-file", "empty", "vmdk"],
)
def test_it_refuses_a_file_that_is_not_what_it_claims(tmp_path, content, fmt, message):
    # given a file that does not match its stated format
    path = tmp_path / "disk"
    path.write_bytes(content)
    # when importing it, then it is refused with the reason and nothing is kept
    with pytest.raises(InvalidImage, match=message):
        images.import_image(path, "Bad", fmt)
    assert not Image.objects.exists()


def test_it_refuses_a_missing_file_kernel_or_malformed_checksum(tmp_path, raw_disk):
    # given a missing disk, a missing kernel, an initrd without kernel and a short checksum
    # when importing, then each is refused
    with pytest.raises(InvalidImage, match="is not a file"):
        images.import_image(tmp_path / "nope.raw", "A", "raw")
    with pytest.raises(InvalidImage, match="kernel"):
        images.import_image(raw_disk, "B", "raw", kernel=tmp_path / "vmlinuz")
    with pytest.raises(InvalidImage, match="initrd needs a kernel"):
        images.import_image(raw_disk, "C", "raw", initrd=raw_disk)
    with pytest.raises(InvalidImage, match="64 hexadecimal"):
        images.import_image(raw_disk, "D", "raw", expected_sha256="abc")
    assert not Image.objects.exists()


def test_it_records_direct_kernel_boot_files(tmp_path, raw_disk):
    # given a kernel and an initrd next to the disk
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"kernel")
    initrd.write_bytes(b"initrd")
    # when importing with them and a command line
    image = images.import_image(raw_disk, "Demo", "raw", kernel=kernel, initrd=initrd, cmdline="console=ttyS0")
    # then they are recorded for the copies and the domain
    assert (image.kernel_path, image.initrd_path, image.cmdline) == (str(kernel), str(initrd), "console=ttyS0")
    assert image.direct_kernel_boot


def test_it_treats_a_repeated_import_as_done_but_refuses_other_content_under_the_name(tmp_path, raw_disk):
    # given an imported image
    first = images.import_image(raw_disk, "Ubuntu", "raw")
    # when the same file is imported again under the name, then it is the same image
    assert images.import_image(raw_disk, "Ubuntu", "raw").pk == first.pk
    # when other content is imported under the name, then it is refused
    other = tmp_path / "other.raw"
    other.write_bytes(b"other" * 100)
    with pytest.raises(ImageExists):
        images.import_image(other, "Ubuntu", "raw")
    assert Image.objects.count() == 1


def test_it_stores_an_upload_under_media_root_checksummed(settings, tmp_path):
    # given an upload and MEDIA_ROOT in a temporary directory
    settings.MEDIA_ROOT = tmp_path / "media"
    content = qcow2_bytes(2 * 1024**3, padding=3 * 1024 * 1024)
    upload = SimpleUploadedFile("ubuntu.qcow2", content)
    # when it is imported with its checksum
    image = images.import_uploaded_image(
        upload=upload, name="Ubuntu", fmt="qcow2", expected_sha256=hashlib.sha256(content).hexdigest()
    )
    # then it lives under MEDIA_ROOT/images with the right checksum and sizes
    assert image.file.name == "images/ubuntu.qcow2"
    assert image.local_path.read_bytes() == content
    assert (image.size_bytes, image.virtual_size_bytes) == (len(content), 2 * 1024**3)
    assert image.sha256 == hashlib.sha256(content).hexdigest()


def test_it_keeps_no_file_from_an_upload_with_a_wrong_checksum(settings, tmp_path):
    # given an upload whose checksum does not match
    settings.MEDIA_ROOT = tmp_path / "media"
    upload = SimpleUploadedFile("ubuntu.qcow2", qcow2_bytes(1024**3))
    # when importing it
    with pytest.raises(ChecksumMismatch):
        images.import_uploaded_image(upload=upload, name="Ubuntu", fmt="qcow2", expected_sha256="0" * 64)
    # then neither a row nor a file (nor a temporary file) is left
    assert not Image.objects.exists()
    assert list((tmp_path / "media" / "images").iterdir()) == []


def test_it_imports_from_the_command_line(raw_disk):
    # given the import_image command, when run with a wrong checksum, then it fails
    with pytest.raises(CommandError, match="checksum_mismatch"):
        call_command("import_image", str(raw_disk), "CLI", "--format", "raw", "--sha256", "1" * 64)
    # when run with the right one, then the image exists
    call_command("import_image", str(raw_disk), "CLI", "--format", "raw", "--sha256", sha(raw_disk))
    assert Image.objects.get(name="CLI").sha256 == sha(raw_disk)
