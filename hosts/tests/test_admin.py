"""The operators' admin: host list with capacity bars, registration, actions, image upload."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from hosts import dispatch, scheduling
from hosts.admin import capacity_bar
from hosts.choices import CopyState
from hosts.hypervisor import GuestMemory, MemoryFacts
from hosts.models import Host, Image, ImageCopy
from hosts.scheduling import PlacementRequest
from hosts.services import health
from hosts.tests.factories import HostFactory, ImageFactory
from hosts.tests.fakes import qcow2_bytes
from hosts.tests.libvirt_hosts import DEAD_URI, DEFAULT_POOL, DEFAULT_URI
from tenants.models import AuditEvent, User
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    user = User.objects.create_superuser(email=f"op-{uuid.uuid4().hex[:6]}@example.test", password="x" * 12)
    return login_client(user)


def test_it_lists_hosts_with_capacity_bars_state_and_heartbeat_age(operator):
    # given a host holding 24 of its 64 vCPUs
    HostFactory(name="kvm-01", allocated_vcpus=24, allocated_memory_mib=1024)
    # when the operator opens the host list
    page = operator.get("/admin/hosts/host/")
    # then it shows the bars, the state and how long ago the host answered
    assert page.status_code == 200
    html = page.content.decode()
    assert "kvm-01" in html and "24/64" in html and "1024/64512" in html
    assert "s ago" in html and ">Up<" in html


def test_it_shows_allocated_against_used_memory_merged_pages_the_ratio_and_a_swap_warning(operator):
    # given an overcommitting host whose running desktop measures 700 of its 3584 MiB, with 2 GiB merged, and
    # whose available memory fell below its reserve; and a quiet host beside it
    busy = HostFactory(name="kvm-dense", memory_mib=8192, reserved_memory_mib=1024, ram_ratio=1.5)
    quiet = HostFactory(name="kvm-quiet")
    scheduling.place(PlacementRequest(desktop_id=1, vcpus=1, memory_mib=3584, exclude_host_ids=frozenset({quiet.pk})))
    health.store_memory_facts(
        host_id=busy.pk,
        facts=MemoryFacts(available_mib=512, guests=(GuestMemory(desktop_id=1, used_mib=700),), merged_mib=2048),
    )
    # when the operator opens the host list and the live dashboard
    listing = operator.get("/admin/hosts/host/").content.decode()
    dashboard = operator.get("/admin/hosts/host/dashboard/rows/").content.decode()
    # then both show allocated against used, merged pages, the ratio, and warn of swapping for that host only
    assert "allocated: 3584 MiB · used: 700 MiB · merged: 2048 MiB · overcommit: 1.5x" in listing
    assert listing.count('data-testid="swap-warning"') == 1
    assert "used 700 MiB · overcommit 1.5x · merged 2048 MiB" in dashboard
    assert f'data-testid="swap-warning-{busy.pk}"' in dashboard
    assert f'data-testid="swap-warning-{quiet.pk}"' not in dashboard


def test_it_draws_bars_that_turn_red_when_nearly_full():
    # given usage at 50 % and 95 %, when drawing, then the colour and width follow
    assert "width:50%" in capacity_bar(32, 64) and "#2e7d32" in capacity_bar(32, 64)
    assert "#c62828" in capacity_bar(61, 64)
    assert "width:100%" in capacity_bar(1, 0)


def test_it_puts_hosts_in_maintenance_and_drain_from_the_list(operator):
    # given two hosts
    first, second = HostFactory(), HostFactory()
    # when the operator runs the maintenance and drain actions
    ids = [first.pk, second.pk]
    operator.post("/admin/hosts/host/", {"action": "maintenance_on", "_selected_action": ids})
    operator.post("/admin/hosts/host/", {"action": "drain_on", "_selected_action": [first.pk]})
    # then the flags are set and audited
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.maintenance, first.drain, second.maintenance, second.drain) == (True, True, True, False)
    assert AuditEvent.objects.filter(action="host.maintenance.on").count() == 2


def test_it_registers_a_host_from_the_admin_and_refuses_an_unreachable_one(operator):
    # given the add form
    form = {
        "uri": DEFAULT_URI,
        "name": "",
        "enabled": "on",
        "cpu_ratio": "4",
        "ram_ratio": "1",
        "reserved_memory_mib": "512",
        "console_address": "",
        "virt_type": "",
        "storage_pool": DEFAULT_POOL,
    }
    # when an unreachable URI is submitted
    page = operator.post("/admin/hosts/host/add/", {**form, "uri": DEAD_URI})
    # then the form shows the reason and nothing is saved
    assert page.status_code == 200 and b"Cannot reach libvirt" in page.content
    assert not Host.objects.exists()
    # when a reachable URI is submitted
    response = operator.post("/admin/hosts/host/add/", form)
    # then the host is registered with what libvirt reports
    assert response.status_code == 302, response.content[:2000]
    host = Host.objects.get(uri=DEFAULT_URI)
    assert (host.cpus, host.reserved_memory_mib, host.console_address) == (16, 512, "127.0.0.1")
    assert AuditEvent.objects.get(action="host.register").actor.is_superuser


def test_it_saves_only_operator_settings_so_counters_are_never_rolled_back(operator):
    # given a host page opened while it held nothing
    host = HostFactory()
    operator.get(f"/admin/hosts/host/{host.pk}/change/")
    # and desktops placed meanwhile
    Host.objects.filter(pk=host.pk).update(allocated_vcpus=5, allocated_memory_mib=5120)
    # when the operator saves a new CPU ratio
    form = {
        "name": host.name,
        "enabled": "on",
        "cpu_ratio": "2",
        "ram_ratio": "1",
        "reserved_memory_mib": "1024",
        "console_address": host.console_address,
        "virt_type": "qemu",
        "storage_pool": "default",
        "devices-TOTAL_FORMS": "0",
        "devices-INITIAL_FORMS": "0",
        "image_copies-TOTAL_FORMS": "0",
        "image_copies-INITIAL_FORMS": "0",
    }
    response = operator.post(f"/admin/hosts/host/{host.pk}/change/", form)
    # then the settings changed and the counters kept the placements
    assert response.status_code == 302, response.content[:3000]
    host.refresh_from_db()
    assert (host.cpu_ratio, host.virt_type) == (2.0, "qemu")
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (5, 5120)
    assert AuditEvent.objects.get(action="host.update").data["after"] == {"cpu_ratio": 2.0, "virt_type": "qemu"}


def test_it_checksums_an_uploaded_image_and_keeps_nothing_on_mismatch(operator, settings, tmp_path):
    # given an image file and MEDIA_ROOT in a temporary directory
    settings.MEDIA_ROOT = tmp_path
    content = qcow2_bytes(1024**3)
    form = {"name": "Ubuntu", "format": "qcow2", "description": "", "kernel_path": "", "initrd_path": "", "cmdline": ""}
    # when it is uploaded with a wrong checksum
    page = operator.post(
        "/admin/hosts/image/add/",
        {**form, "upload": SimpleUploadedFile("u.qcow2", content), "expected_sha256": "f" * 64},
    )
    # then the form says so and nothing is kept
    assert page.status_code == 200 and b"not the expected" in page.content
    assert not Image.objects.exists()
    # when it is uploaded with the right checksum
    digest = hashlib.sha256(content).hexdigest()
    response = operator.post(
        "/admin/hosts/image/add/",
        {**form, "upload": SimpleUploadedFile("u.qcow2", content), "expected_sha256": digest},
    )
    # then it is stored under MEDIA_ROOT/images with its checksum
    assert response.status_code == 302
    image = Image.objects.get(name="Ubuntu")
    assert image.sha256 == digest and image.file.name == "images/u.qcow2"
    assert (tmp_path / "images" / "u.qcow2").read_bytes() == content


def test_it_copies_images_to_every_host_from_the_list(operator, sent_tasks, django_capture_on_commit_callbacks):
    # given an image and two enabled hosts and a disabled one
    image = ImageFactory()
    hosts = [HostFactory(), HostFactory()]
    HostFactory(enabled=False)
    # when the operator runs "copy to all hosts"
    with django_capture_on_commit_callbacks(execute=True):
        operator.post("/admin/hosts/image/", {"action": "copy_to_all_hosts", "_selected_action": [image.pk]})
    # then a pending copy per enabled host is queued
    assert sorted(sent_tasks) == sorted((dispatch.COPY_IMAGE_TO_HOST, (image.pk, h.pk)) for h in hosts)
    assert set(ImageCopy.objects.values_list("host_id", "state")) == {(h.pk, CopyState.PENDING) for h in hosts}
    # and the image page lists them
    assert operator.get(f"/admin/hosts/image/{image.pk}/change/").status_code == 200


def test_it_queues_a_heartbeat_from_the_list(operator, sent_tasks, django_capture_on_commit_callbacks):
    # given a host, and the broker's door watched
    host = HostFactory()
    # when the operator asks for a check now
    with django_capture_on_commit_callbacks(execute=True):
        operator.post("/admin/hosts/host/", {"action": "heartbeat_now", "_selected_action": [host.pk]})
    # then a heartbeat is queued for it
    assert sent_tasks == [(dispatch.HEARTBEAT_HOST, (host.pk,))]


def test_it_shows_which_hosts_can_boot_windows_11_guests(operator):
    # given a current host, one without swtpm and one whose driver cannot say
    HostFactory(name="ready-01")
    HostFactory(name="no-tpm-01", offers_tpm=False)
    HostFactory(name="unknown-01", offers_uefi=None, offers_secure_boot=None, offers_tpm=None)
    # when the operator opens the host list
    html = operator.get("/admin/hosts/host/").content.decode()
    # then each row says yes, no or unknown under "Windows 11-ready"
    assert "Windows 11-ready" in html
    rows = {name: html[html.index(name) : html.index("</tr>", html.index(name))] for name in HOSTS_BY_READINESS}
    for name, icon in HOSTS_BY_READINESS.items():
        assert f"icon-{icon}.svg" in rows[name], name


HOSTS_BY_READINESS = {"ready-01": "yes", "no-tpm-01": "no", "unknown-01": "unknown"}
