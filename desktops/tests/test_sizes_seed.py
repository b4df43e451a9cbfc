"""A disk larger than its image is usable inside the guest: the cloud-init seed asks to grow the root into it.

The seed is read from the ISO 9660 image Quetzal builds (the bytes the guest gets). libvirt's test driver
has no volume upload, so on it the worker writes an empty seed of the ISO's size; the content is checked on
the ISO itself, and the volume's size tells the rewrite happened.
"""

from __future__ import annotations

import io
import json

import pycdlib
import pytest
from lxml import etree

from desktops.cloudinit import SeedConfig, build_seed_iso
from desktops.models import Desktop, Operation
from desktops.services import execution, sizes, spec
from desktops.tests.factories import DesktopFactory
from hosts.hypervisor import get_hypervisor
from hosts.models import Image, NetworkLease
from tests.fixtures import api_client

GIB = 1024**3
GROW = {"growpart": {"mode": "auto", "devices": ["/"]}, "resize_rootfs": True}


def cloud_config(text: str) -> dict:
    """The #cloud-config document as data (Quetzal writes JSON, which is YAML)."""
    header, _, body = text.partition("\n")
    assert header == "#cloud-config"
    return json.loads(body)


def iso_user_data(data: bytes) -> dict:
    """user-data as the guest reads it from the seed ISO (by its Rock Ridge name, as cloud-init mounts it)."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        assert iso.get_record(rr_path="/meta-data") is not None
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path="/user-data")
    finally:
        iso.close()
    return cloud_config(out.getvalue().decode())


@pytest.fixture
def image_20(image: Image) -> Image:
    """The image measured: a 20 GiB disk, as the template's default."""
    Image.objects.filter(pk=image.pk).update(virtual_size_bytes=20 * GIB)
    image.refresh_from_db()
    return image


def test_it_asks_cloud_init_to_grow_the_root_only_when_told():
    grown = cloud_config(SeedConfig(instance_id="i-1", hostname="d-1", grow_root=True).user_data())
    assert {key: grown[key] for key in GROW} == GROW
    plain = cloud_config(SeedConfig(instance_id="i-1", hostname="d-1").user_data())
    assert not set(GROW) & set(plain)


@pytest.mark.parametrize(
    ("disk_gib", "image_gib", "os_family", "grows"),
    [
        (40, 20, "linux", True),  # a custom size or a resize: more disk than the image
        (20, 20, "linux", False),  # the image's own size: its partitions already fill it
        (20, 0, "linux", True),  # an image never measured: growing a full root is a no-op, so ask
        (40, 20, "windows", False),  # cloudbase-init extends Windows volumes with its own plugin
    ],
)
def test_it_grows_the_root_when_the_disk_outgrows_the_image(alice, template, disk_gib, image_gib, os_family, grows):
    Image.objects.filter(pk=template.image_id).update(virtual_size_bytes=image_gib * GIB)
    template.os_family = os_family
    template.save()
    desktop = DesktopFactory(world=alice, template=template, disk_gib=disk_gib)
    desktop = Desktop.objects.select_related("template__image").get(pk=desktop.pk)
    config = spec.seed_config(desktop)
    assert config.grow_root is grows
    user_data = iso_user_data(build_seed_iso(config))
    assert ({key: user_data.get(key) for key in GROW} == GROW) is grows
    assert user_data["hostname"] == f"desktop-{desktop.pk}"


def test_it_writes_a_seed_that_grows_the_root_for_a_launch_with_a_bigger_disk(alice, host, template, image_20, work):
    # Given a template whose disks may grow to 100 GiB; When a member launches one with 60 GiB
    template.max_disk_gib = 100
    template.save()
    with work():
        response = api_client(alice.member, alice.tenant).post(
            "/api/desktop/start", {"template": template.pk, "disk_gib": 60}, format="json"
        )
    assert response.status_code == 202, response.content
    desktop = Desktop.objects.select_related("template__image").get(pk=response.json()["desktop"]["id"])
    # Then its seed, written on the host at its provisioning, asks for growpart and resize_rootfs
    config = spec.seed_config(desktop)
    assert desktop.disk_gib == 60 and config.grow_root
    hv = get_hypervisor(host.uri)
    assert hv.volume_capacity(host.storage_pool, desktop.seed_volume) == len(build_seed_iso(config))
    # While a launch at the template's default (the image's own size) gets no such request
    with work():
        plain = api_client(alice.admin, alice.tenant).post(
            "/api/desktop/start", {"template": template.pk}, format="json"
        )
    other = Desktop.objects.select_related("template__image").get(pk=plain.json()["desktop"]["id"])
    assert other.disk_gib == 20 and not spec.seed_config(other).grow_root


def test_it_knows_which_disk_growth_changes_the_seed(alice, template, image_20):
    desktop = DesktopFactory(world=alice, template=template, disk_gib=20)
    desktop = Desktop.objects.select_related("template__image").get(pk=desktop.pk)
    # Outgrowing the image: the seed must now ask for growpart
    after = spec.seed_after_growth(desktop, from_gib=20, to_gib=30)
    assert after is not None and after.grow_root
    # Already larger than the image: the seed asks for it already
    assert spec.seed_after_growth(desktop, from_gib=30, to_gib=40) is None


def test_it_rewrites_the_seed_on_the_host_when_a_resize_makes_the_disk_outgrow_its_image(
    alice, host, template, image_20, work
):
    # Given a stopped desktop at the image's size, provisioned on the test driver with its seed
    template.max_disk_gib = 100
    template.save()
    with work():
        response = api_client(alice.member, alice.tenant).post(
            "/api/v1/desktops/", {"template": template.pk, "start": False}, format="json"
        )
    desktop = Desktop.objects.select_related("template__image", "tenant").get(pk=response.json()["desktop"]["id"])
    hv = get_hypervisor(host.uri)
    first = spec.seed_config(desktop)
    assert not first.grow_root
    assert hv.volume_capacity(host.storage_pool, desktop.seed_volume) == len(build_seed_iso(first))
    # When the worker's resize step has grown the disk to 50 GiB (the test driver cannot grow one itself)
    operation = Operation.objects.create(tenant=alice.tenant, desktop=desktop, kind="resize", params={})
    current, wanted = sizes.of_desktop(desktop), sizes.Size(vcpus=2, memory_mib=2048, disk_gib=50)
    execution._refresh_seed(operation, hv, host, desktop, current, wanted)
    # Then the seed volume under the same name holds the new seed, which asks to grow the root
    grown = spec.seed_config(desktop, disk_gib=50)
    assert grown.grow_root and grown.user_data() != first.user_data()
    assert hv.volume_capacity(host.storage_pool, desktop.seed_volume) == len(build_seed_iso(grown))
    assert [s["step"] for s in Operation.objects.get(pk=operation.pk).steps] == ["updating seed"]
    # And a second growth past the image changes nothing more
    execution._refresh_seed(operation, hv, host, desktop, sizes.Size(2, 2048, 50), sizes.Size(2, 2048, 60))
    assert [s["step"] for s in Operation.objects.get(pk=operation.pk).steps] == ["updating seed"]


def test_it_keeps_the_desktops_network_when_a_resize_redefines_its_vm(alice, host, template, work):
    # Given a stopped desktop on its tenant's network, allowed up to 4 vCPUs
    template.max_vcpus = 4
    template.save()
    client = api_client(alice.member, alice.tenant)
    with work():
        response = client.post("/api/v1/desktops/", {"template": template.pk, "start": False}, format="json")
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    lease = NetworkLease.objects.get(desktop_id=desktop.pk)
    # When it is resized to 4 vCPUs
    with work():
        resized = client.post(f"/api/v1/desktops/{desktop.pk}/resize/", {"vcpus": 4}, format="json")
    assert resized.status_code == 202, resized.content
    # Then its VM has the new vCPUs and still its NIC on the tenant's network, with the same address
    conn = get_hypervisor(host.uri).connection.get()
    root = etree.fromstring(conn.lookupByName(desktop.domain_name).XMLDesc(0).encode())
    assert root.findtext("vcpu") == "4"
    assert [i.get("address") for i in root.iterfind("devices/interface/mac")] == [lease.mac]
    assert NetworkLease.objects.get(desktop_id=desktop.pk).ip == lease.ip
