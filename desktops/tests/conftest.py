"""Desktop fixtures: a fresh libvirt test-driver host per test, an image, a template, eager tasks."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from desktops.models import DesktopTemplate
from desktops.tests.browser import chromium  # noqa: F401  (fixture)
from desktops.tests.factories import DesktopTemplateFactory
from desktops.tests.qemu_world import demo_template, qemu_host, start_worker  # noqa: F401  (fixtures)
from hosts.choices import CopyState, HostState
from hosts.hypervisor import get_hypervisor
from hosts.models import Host, Image, ImageCopy
from quetzal.celery import app as celery_app

NODE_XML = """<?xml version="1.0"?>
<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>{cpus}</active><nodes>1</nodes><sockets>1</sockets>
    <cores>{cpus}</cores><threads>1</threads></cpu>
  <memory>{memory_kib}</memory>
  <pool type="dir"><name>default</name><uuid>{pool_uuid}</uuid>
    <capacity unit="GiB">500</capacity><allocation unit="GiB">0</allocation><available unit="GiB">500</available>
    <target><path>/var/lib/libvirt/images</path></target></pool>
</node>
"""


def make_test_host(tmp_path, *, name: str = "", cpus: int = 16, memory_gib: int = 64, **fields) -> Host:
    """A host row backed by its own libvirt test-driver instance (state is per URI and process)."""
    path = tmp_path / f"node-{uuid.uuid4().hex[:8]}.xml"
    path.write_text(NODE_XML.format(cpus=cpus, memory_kib=memory_gib * 1024 * 1024, pool_uuid=uuid.uuid4()))
    values = dict(
        name=name or path.stem,
        uri=f"test://{path}",
        cpus=cpus,
        memory_mib=memory_gib * 1024,
        free_memory_mib=memory_gib * 1024,
        arch="x86_64",
        virt_types=["qemu"],
        detected_virt_type="qemu",
        state=HostState.UP,
        last_heartbeat_at=timezone.now(),
        console_address="127.0.0.1",
        reserved_memory_mib=0,
    )
    values.update(fields)
    return Host.objects.create(**values)


def place_image(host: Host, image: Image) -> ImageCopy:
    """The image's base volume in the host's pool, ready for linked clones."""
    hv = get_hypervisor(host.uri)
    name = f"image-{image.pk}.qcow2"
    path = hv.volume_create(host.storage_pool, name, 1024**3, fmt="qcow2")
    return ImageCopy.objects.create(
        image=image, host=host, state=CopyState.READY, pool=host.storage_pool, volume_name=name, volume_path=path
    )


@pytest.fixture
def image(db, tmp_path) -> Image:
    data = b"\0" * 4096
    path = tmp_path / "base.img"
    path.write_bytes(data)
    return Image.objects.create(
        name=f"base-{uuid.uuid4().hex[:6]}",
        format="raw",
        source_path=str(path),
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


@pytest.fixture
def host(db, tmp_path, image) -> Host:
    created = make_test_host(tmp_path)
    place_image(created, image)
    return created


@pytest.fixture
def template(image) -> DesktopTemplate:
    return DesktopTemplateFactory(
        name="Ubuntu Desktop",
        os_family="linux",
        image=image,
        vcpus=2,
        memory_mib=2048,
        disk_gib=20,
        price_per_hour=Decimal("0.10"),
    )


@pytest.fixture
def work(django_capture_on_commit_callbacks):
    """`with work():` runs the Celery tasks queued inside the block, in-process, as it ends."""
    celery_app.conf.task_always_eager = True
    yield lambda: django_capture_on_commit_callbacks(execute=True)
    celery_app.conf.task_always_eager = False
