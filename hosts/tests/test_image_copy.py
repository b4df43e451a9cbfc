"""Copying images to hosts (guarded states, libvirt streams) and cloning desktop disks from them."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from hosts import dispatch, tasks
from hosts.choices import CopyState
from hosts.errors import ImageCopyFailed, ImageNotReady
from hosts.hypervisor import HostUnavailable, HypervisorError, get_hypervisor
from hosts.models import Host, ImageCopy
from hosts.services import images
from hosts.services.hosts import register_host
from hosts.tests.factories import HostFactory, ImageCopyFactory, ImageFactory
from hosts.tests.fakes import RecordingHypervisor
from hosts.tests.libvirt_hosts import DEAD_URI, DEFAULT_POOL, DEFAULT_URI
from quetzal.errors import Conflict
from tenants.models import AuditEvent
from tests.services import require, require_tool

pytestmark = pytest.mark.django_db

QEMU_URI = "qemu:///system"


@pytest.fixture
def boot_files(tmp_path: Path) -> dict[str, Path]:
    files = {"disk": tmp_path / "disk.raw", "kernel": tmp_path / "vmlinuz", "initrd": tmp_path / "initrd.img"}
    for name, path in files.items():
        path.write_bytes(name.encode() * 5000)
    return files


@pytest.fixture
def demo_like_image(boot_files):
    f = boot_files
    return images.import_image(f["disk"], f"img-{uuid.uuid4().hex[:6]}", "raw", kernel=f["kernel"], initrd=f["initrd"])


def test_it_uploads_the_disk_kernel_and_initrd_and_marks_the_copy_ready(monkeypatch, demo_like_image, boot_files):
    # given a host reached through a driver that records uploads
    host = HostFactory()
    driver = RecordingHypervisor()
    monkeypatch.setattr(images, "get_hypervisor", lambda uri: driver)
    # when the image is copied
    copy = images.copy_image_to_host(image=demo_like_image, host=host)
    # then all three files crossed byte for byte and the copy knows their paths
    disk, kernel, initrd = images.volume_names(demo_like_image)
    assert driver.volumes == {
        disk: boot_files["disk"].read_bytes(),
        kernel: boot_files["kernel"].read_bytes(),
        initrd: boot_files["initrd"].read_bytes(),
    }
    assert copy.state == CopyState.READY
    assert (copy.volume_path, copy.kernel_path, copy.initrd_path) == (
        f"/pool/{disk}",
        f"/pool/{kernel}",
        f"/pool/{initrd}",
    )
    assert copy.pool == host.storage_pool and copy.finished_at is not None
    assert AuditEvent.objects.filter(action="image.copy").count() == 1


def test_it_marks_the_copy_failed_and_removes_partial_volumes(monkeypatch, demo_like_image):
    # given a host whose pool fills up while the initrd is sent
    host = HostFactory()
    driver = RecordingHypervisor(fail_on="initrd.img")
    monkeypatch.setattr(images, "get_hypervisor", lambda uri: driver)
    # when copying
    with pytest.raises(ImageCopyFailed, match="pool is full"):
        images.copy_image_to_host(image=demo_like_image, host=host)
    # then the copy is failed with the reason, and the disk and kernel already sent are gone
    copy = ImageCopy.objects.get(image=demo_like_image, host=host)
    assert copy.state == CopyState.FAILED and "pool is full" in copy.error
    assert driver.volumes == {}


def test_it_reports_what_the_test_driver_cannot_do(demo_like_image):
    # given a test-driver host (libvirt's test driver has no volume streams)
    host = register_host(DEFAULT_URI, name=f"t-{uuid.uuid4().hex[:6]}", storage_pool=DEFAULT_POOL)
    # when copying, then the copy fails with the driver's reason and no volume is left behind
    with pytest.raises(ImageCopyFailed, match="not supported"):
        images.copy_image_to_host(image=demo_like_image, host=host)
    copy = ImageCopy.objects.get(image=demo_like_image, host=host)
    assert copy.state == CopyState.FAILED and "virStorageVolUpload" in copy.error
    assert not get_hypervisor(DEFAULT_URI).volume_exists(DEFAULT_POOL, images.volume_names(demo_like_image)[0])


def test_it_says_unreachable_when_the_host_does_not_answer(demo_like_image):
    # given a host that does not answer
    host = HostFactory(uri=DEAD_URI)
    # when copying, then the error is retryable and recorded on the copy
    with pytest.raises(HostUnavailable):
        images.copy_image_to_host(image=demo_like_image, host=host)
    copy = ImageCopy.objects.get(image=demo_like_image, host=host)
    assert copy.state == CopyState.FAILED and copy.error


def test_it_leaves_a_ready_copy_alone():
    # given a ready copy on a host that would not even answer
    copy = ImageCopyFactory(host=HostFactory(uri=DEAD_URI))
    # when copying again, then the ready copy is returned untouched
    again = images.copy_image_to_host(image=copy.image, host=copy.host)
    assert again.pk == copy.pk and again.state == CopyState.READY and again.volume_path == copy.volume_path


def test_it_refuses_a_second_copy_while_one_runs_but_takes_over_a_stale_one(monkeypatch, demo_like_image):
    # given a copy another worker started a minute ago
    host = HostFactory()
    copy = ImageCopy.objects.create(
        image=demo_like_image, host=host, state=CopyState.COPYING, started_at=timezone.now() - timedelta(minutes=1)
    )
    monkeypatch.setattr(images, "get_hypervisor", lambda uri: RecordingHypervisor())
    # when copying again, then it is refused as in progress
    with pytest.raises(Conflict) as caught:
        images.copy_image_to_host(image=demo_like_image, host=host)
    assert caught.value.code == "copy_in_progress"
    # when that worker has been silent for two hours (killed), then the copy is taken over
    ImageCopy.objects.filter(pk=copy.pk).update(started_at=timezone.now() - timedelta(hours=2))
    assert images.copy_image_to_host(image=demo_like_image, host=host).state == CopyState.READY


def test_it_does_not_let_a_stale_worker_overwrite_a_takeover(monkeypatch, demo_like_image):
    # given a worker whose copy is taken over by another while it uploads
    host = HostFactory()

    class SlowHypervisor(RecordingHypervisor):
        def volume_upload(self, pool, name, src_path, fmt="qcow2"):
            ImageCopy.objects.filter(image=demo_like_image, host=host).update(started_at=timezone.now())
            return super().volume_upload(pool, name, src_path, fmt)

    monkeypatch.setattr(images, "get_hypervisor", lambda uri: SlowHypervisor())
    # when the first worker finishes
    copy = images.copy_image_to_host(image=demo_like_image, host=host)
    # then it does not mark the copy ready: the new owner will
    assert copy.state == CopyState.COPYING


def test_it_queues_pending_copies_after_commit(django_capture_on_commit_callbacks, sent_tasks):
    # given an image ready on one host and failed on another, and a new host
    image = ImageFactory()
    ready = ImageCopyFactory(image=image).host
    failed = ImageCopyFactory(image=image, state=CopyState.FAILED).host
    new = HostFactory()
    # when copies to all three are requested
    with django_capture_on_commit_callbacks(execute=True):
        copies = images.request_copies(image=image, hosts=[ready, failed, new])
    # then the failed and the new one are pending and queued, the ready one is left alone
    assert [c.state for c in copies] == [CopyState.READY, CopyState.PENDING, CopyState.PENDING]
    assert sorted(sent_tasks) == sorted(
        [(dispatch.COPY_IMAGE_TO_HOST, (image.pk, failed.pk)), (dispatch.COPY_IMAGE_TO_HOST, (image.pk, new.pk))]
    )


def test_it_retries_only_unreachable_hosts_in_the_task(monkeypatch, demo_like_image):
    # given an unreachable host and a host whose copy fails for good
    dead = HostFactory(uri=DEAD_URI)
    broken = HostFactory()
    monkeypatch.setattr(
        images, "get_hypervisor", lambda uri: get_hypervisor(uri) if uri == DEAD_URI else RecordingHypervisor("raw")
    )
    # when the task runs, then the unreachable host raises (so Celery retries) and the other does not
    with pytest.raises(HostUnavailable):
        tasks.copy_image_to_host(demo_like_image.pk, dead.pk)
    tasks.copy_image_to_host(demo_like_image.pk, broken.pk)
    assert ImageCopy.objects.get(host=broken).state == CopyState.FAILED
    # and ids that no longer exist are no error
    tasks.copy_image_to_host(demo_like_image.pk, 424242)


def test_it_clones_a_desktop_disk_from_the_ready_copy():
    # given a test-driver host with a base volume and a ready copy of a 10 GiB image
    host = register_host(DEFAULT_URI, name=f"t-{uuid.uuid4().hex[:6]}", storage_pool=DEFAULT_POOL)
    hypervisor = get_hypervisor(DEFAULT_URI)
    base = f"base-{uuid.uuid4().hex[:8]}.qcow2"
    base_path = hypervisor.volume_create(DEFAULT_POOL, base, 10 * 1024**3)
    copy = ImageCopyFactory(host=host, volume_name=base, volume_path=base_path, pool=DEFAULT_POOL)
    name = f"desktop-{uuid.uuid4().hex[:8]}.qcow2"
    # when a desktop disk is made (and made again, as a retried task would)
    path = images.create_desktop_disk(host=host, image=copy.image, volume_name=name, capacity_bytes=20 * 1024**3)
    again = images.create_desktop_disk(host=host, image=copy.image, volume_name=name, capacity_bytes=20 * 1024**3)
    # then the overlay exists once, at the same path
    assert path == again == f"/{DEFAULT_POOL}/{name}"
    assert hypervisor.volume_exists(DEFAULT_POOL, name)
    hypervisor.volume_delete(DEFAULT_POOL, name)
    hypervisor.volume_delete(DEFAULT_POOL, base)


def test_it_never_makes_a_disk_smaller_than_the_image(monkeypatch):
    # given a ready copy of a 10 GiB image and a driver that records the clone request
    copy = ImageCopyFactory()
    calls = []

    class Spy:
        def volume_create_linked_clone(self, pool, name, backing_path, backing_format="qcow2", capacity_bytes=None):
            calls.append((pool, name, backing_path, backing_format, capacity_bytes))
            return f"/pool/{name}"

    monkeypatch.setattr(images, "get_hypervisor", lambda uri: Spy())
    # when a template asks for a 1 GiB disk
    images.create_desktop_disk(host=copy.host, image=copy.image, volume_name="d1", capacity_bytes=1024**3)
    # then the overlay is as large as the image, on top of the host's copy
    assert calls == [("default", "d1", copy.volume_path, "qcow2", 10 * 1024**3)]


def test_it_refuses_a_disk_when_the_image_is_not_on_the_host():
    # given an image still copying to the host
    copy = ImageCopyFactory(state=CopyState.COPYING)
    # when a disk is asked for, then the error says the image is not ready there
    with pytest.raises(ImageNotReady) as caught:
        images.create_desktop_disk(host=copy.host, image=copy.image, volume_name="d1", capacity_bytes=1)
    assert caught.value.code == "image_not_ready"


@pytest.mark.qemu
def test_it_copies_through_streams_to_a_real_libvirtd_and_clones_from_it(tmp_path):
    qemu_img = require_tool("qemu-img", "qemu-utils")
    try:
        get_hypervisor(QEMU_URI).pool_path("default")
        answers = True
    except HypervisorError:
        answers = False
    require(answers, f"libvirtd with a 'default' pool at {QEMU_URI} (scripts/start-libvirtd)")
    # given a real qcow2 with data, a kernel file, and the local libvirtd as a host
    disk = tmp_path / "base.qcow2"
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"\x7fkernel" * 1000)
    image = images.import_image(disk, f"qtest-{uuid.uuid4().hex[:6]}", "qcow2", kernel=kernel)
    host = Host.objects.filter(uri=QEMU_URI).first() or register_host(QEMU_URI, name="local-qemu")
    hypervisor = get_hypervisor(QEMU_URI)
    clone = f"qtest-{uuid.uuid4().hex[:8]}-hosts-clone.qcow2"
    try:
        # when the image is copied and a desktop disk cloned from it
        copy = images.copy_image_to_host(image=image, host=host)
        path = images.create_desktop_disk(host=host, image=image, volume_name=clone, capacity_bytes=1024**3)
        # then the host holds the same bytes, and the disk is a thin overlay on the copy
        assert copy.state == CopyState.READY
        assert hashlib.sha256(Path(copy.volume_path).read_bytes()).hexdigest() == image.sha256
        assert Path(copy.kernel_path).read_bytes() == kernel.read_bytes()
        info = subprocess.run(
            [qemu_img, "info", "-U", "--output=json", path], check=True, capture_output=True, text=True
        ).stdout
        assert copy.volume_path in info and '"virtual-size": 1073741824' in info
    finally:
        for volume in (clone, *images.volume_names(image)):
            hypervisor.volume_delete("default", volume)
