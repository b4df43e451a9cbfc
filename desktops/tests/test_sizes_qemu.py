"""Sizes on a real libvirtd + QEMU: the demo guest reports its own CPUs, RAM and disk on its serial port.

Two boots in all (CPU is scarce here): launch at a size other than the template's, grow the disk while it
runs, then stop, resize vCPUs and RAM, and start again. The guest prints `nproc`, MemTotal from
/proc/meminfo, its disk's size and /data's size (after growing the filesystem) at boot and whenever the
disk's size changes; the operations run in-process (the `work` fixture), the VM is real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from desktops.choices import DesktopState, OperationStatus
from desktops.models import Desktop, Operation
from desktops.services import spec
from hosts import demo_image
from tests.fixtures import api_client
from tests.waiting import wait_until

pytestmark = pytest.mark.qemu

GIB = 1024**3


def _serial(desktop: Desktop) -> str:
    path = Path(spec.serial_log_path(desktop))
    return path.read_text(errors="replace") if path.exists() else ""


def _reported(desktop: Desktop, check) -> demo_image.GuestSize:
    """Wait for the guest's latest size report to pass `check`; fail with the serial log's tail."""

    def latest_matching():
        found = demo_image.parse_sizes(_serial(desktop))
        return found[-1] if found and check(found[-1]) else None

    return wait_until(latest_matching, 180, 0.5, explain=lambda: _serial(desktop)[-1500:])


def _post(client, url: str, body: dict | None, work) -> dict:
    with work():
        response = client.post(url, body or {}, format="json")
    assert response.status_code == 202, response.content
    operation = Operation.objects.get(pk=response.json()["operation"]["id"])
    assert operation.status == OperationStatus.SUCCEEDED, (operation.error_code, operation.error)
    return response.json()


@pytest.fixture
def _own_image_ids(transactional_db):
    """Image volumes are named by image id in the host's shared pool: start ours far from other runs' ids."""
    import secrets

    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER SEQUENCE hosts_image_id_seq RESTART WITH {100_000 + secrets.randbelow(10**6)}")


def test_it_boots_resizes_and_grows_the_disk_the_guest_sees(
    _own_image_ids, alice, demo_template, qemu_host, work, settings
):
    settings.DESKTOP_STOP_TIMEOUT_S = 60
    # Given the demo template (1 vCPU / 256 MiB / 1 GiB) open to 2 vCPUs, 512 MiB and 4 GiB
    demo_template.max_vcpus, demo_template.max_memory_mib, demo_template.max_disk_gib = 2, 512, 4
    demo_template.save()
    client = api_client(alice.member, alice.tenant)
    # When a member launches it at 2 vCPUs / 384 MiB / 2 GiB
    body = _post(
        client, "/api/desktop/start", {"template": demo_template.pk, "vcpus": 2, "memory_mib": 384, "disk_gib": 2}, work
    )
    desktop = Desktop.objects.get(pk=body["desktop"]["id"])
    try:
        assert desktop.state == DesktopState.RUNNING
        # Then the guest counts 2 CPUs, about 384 MiB (the kernel keeps some), a 2 GiB disk and /data grown to it
        first = _reported(desktop, lambda s: s.disk_bytes == 2 * GIB)
        assert first.cpus == 2
        assert 300 * 1024 < first.mem_kib <= 384 * 1024
        assert first.data_kib > 1900 * 1024

        # When its disk grows to 3 GiB while it runs
        _post(client, f"/api/v1/desktops/{desktop.pk}/resize/", {"disk_gib": 3}, work)
        # Then the running guest sees the bigger disk and grows /data onto it, no reboot
        grown = _reported(desktop, lambda s: s.disk_bytes == 3 * GIB)
        assert grown.data_kib > 2800 * 1024 and grown.cpus == 2

        # When it is stopped, resized to 1 vCPU / 512 MiB, and started
        _post(client, f"/api/v1/desktops/{desktop.pk}/stop/", None, work)
        _post(client, f"/api/v1/desktops/{desktop.pk}/resize/", {"vcpus": 1, "memory_mib": 512}, work)
        _post(client, f"/api/v1/desktops/{desktop.pk}/start/", None, work)
        # Then the guest boots with the new size (the serial log starts afresh at each boot)
        after = _reported(desktop, lambda s: s.cpus == 1)
        assert 400 * 1024 < after.mem_kib <= 512 * 1024
        assert after.disk_bytes == 3 * GIB and after.data_kib > 2800 * 1024
        desktop.refresh_from_db()
        assert (desktop.vcpus, desktop.memory_mib, desktop.disk_gib) == (1, 512, 3)
        # And shrinking is refused with its code
        refused = client.post(f"/api/v1/desktops/{desktop.pk}/resize/", {"disk_gib": 2}, format="json")
        assert refused.status_code == 400 and refused.json()["code"] == "disk_shrink"
    finally:
        from desktops.services.execution import remove_from_host

        remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)
