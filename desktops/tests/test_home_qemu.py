"""Home disks on a real libvirtd + QEMU with the demo guest: hot-plugged on a claim, found by serial, reached by the
guest agent while attached and from the host side when not, and kept across a pooled desktop's recycle; encrypted
(LUKS, its own key handed to QEMU at the hot-plug) as this host encrypts desktop disks.

Two guest boots in all (CPU is scarce here). Work runs in-process (eager Celery); the guest is checked through its
VNC keyboard and the screen it mirrors to its serial log, never through the agent the file manager itself uses.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import pytest

from desktops.choices import DesktopState
from desktops.models import Desktop, HomeDisk, Pool
from desktops.services import homes, pools, spec
from desktops.services.requests import request_stop
from desktops.tests.factories import PoolFactory
from hosts import demo_image as di
from hosts.hypervisor import get_hypervisor
from hosts.services import health
from hosts.tests.qemu_fixtures import VncKeyboard, read_text
from quetzal.celery import app as celery_app
from tests.fixtures import api_client
from tests.services import require
from tests.waiting import wait_until

pytestmark = [pytest.mark.qemu, pytest.mark.django_db(transaction=True)]
_MARKS = itertools.count(1)


@pytest.fixture(autouse=True)
def eager(settings, tmp_path):
    settings.HOME_SPOOL_DIR = tmp_path / "spool"
    # The demo guest gets qemu-ga from this machine: without it the file manager would answer 409 for ever.
    require(di.find_qemu_ga() is not None, "qemu-guest-agent (scripts/system-packages installs it)")
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


class Guest:
    """Type into a running desktop's console and read its mirrored screen from the serial log."""

    def __init__(self, desktop: Desktop) -> None:
        self.desktop = Desktop.objects.select_related("host").get(pk=desktop.pk)
        self.log_path = Path(spec.serial_log_path(self.desktop))
        self.hv = get_hypervisor(self.desktop.host.uri)

    def log(self) -> str:
        return read_text(self.log_path)

    def wait_for(self, needle: str, timeout: float = 900) -> None:
        wait_until(lambda: needle in self.log(), timeout, explain=lambda: self.log()[-2000:])

    def run(self, command: str) -> str:
        n = next(_MARKS)
        marker = f"=={n + 1}=="
        offset = len(self.log())
        address = self.hv.console_address(self.desktop.domain_name)
        keyboard = VncKeyboard(address.host, address.port)
        try:
            keyboard.type_text(f"clear; {command}; echo ==$(({n}+1))==\n")
        finally:
            keyboard.close()

        def screen():
            last = di.last_screen(self.log()[offset:])
            return last if last is not None and marker in last.lines else None

        shown = wait_until(screen, 300, explain=lambda: self.log()[-2000:])
        return "\n".join(shown.lines[: list(shown.lines).index(marker)])


def _upload(client, path: str, data: bytes) -> dict:
    upload = client.post("/api/v1/files/uploads/", {"path": path, "size": len(data)}, format="json").json()
    put = client.generic(
        "PUT", f"/api/v1/files/uploads/{upload['id']}/?offset=0", data, content_type="application/octet-stream"
    )
    assert put.status_code == 200, put.json()
    finished = client.post(f"/api/v1/files/uploads/{upload['id']}/finish/")
    assert finished.status_code == 201, finished.json()
    return finished.json()


def _download(client, path: str) -> bytes:
    response = client.get("/api/v1/files/download/", {"path": path})
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


def _file_contains(path: str, needle: bytes) -> bool:
    """Whether the bytes occur anywhere in the file (read in pieces that overlap by the needle's length)."""
    tail = b""
    with open(path, "rb") as handle:
        while piece := handle.read(8 * 1024 * 1024):
            if needle in tail + piece:
                return True
            tail = piece[-len(needle) :]
    return False


def _when_agent_answers(call):
    """The agent starts a moment after the shell; the file manager says 409 until then."""
    return wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(call()), 900, 2)


def _warm_and_running(pool: Pool) -> Desktop:
    """The pool's unassigned desktop once it runs on a host (its create may still be under way)."""

    def story() -> str:
        return "; ".join(
            f"{d.name} #{d.pk} {d.state} on {d.host_id}: "
            + ", ".join(f"{o.kind} {o.status} {o.error_code} {o.error[:200]}" for o in d.operations.all())
            for d in Desktop.objects.filter(pool=pool)
        )

    def running():
        warm = Desktop.objects.filter(pool=pool, user__isnull=True).exclude(state=DesktopState.DELETED).first()
        if warm is not None and warm.state == DesktopState.ERROR:
            pytest.fail(f"the next warm desktop failed: {story()}")
        return warm if warm is not None and warm.state == DesktopState.RUNNING and warm.host_id else None

    return wait_until(running, 900, 1, explain=story)


def test_it_keeps_a_persons_files_across_pooled_desktops_and_without_one(alice, demo_template, qemu_host):
    alice.tenant.home_disk_gib = 1
    alice.tenant.idle_timeout_minutes = 0
    alice.tenant.save()
    client = api_client(alice.member, alice.tenant)
    pool = PoolFactory(world=alice, template=demo_template, min_ready=1, max_size=2)
    made: list[int] = []
    try:
        # Given a warm pooled desktop, running (boot 1)
        pools.refill(pool)
        first = Desktop.objects.get(pool=pool)
        made.append(first.pk)
        guest = Guest(first)
        guest.wait_for(di.READY_BANNER)
        # When the person claims it: the claim is instant, and the home is hot-plugged behind it (the refill it
        # triggers makes the next warm desktop: boot 2)
        # (the beat keeps the host's heartbeat fresh in production; here the boot took longer than it counts for)
        health.heartbeat(host_id=qemu_host.pk)
        claimed, operation = pools.claim(tenant=alice.tenant, user=alice.member, template=demo_template)
        assert claimed.pk == first.pk and operation is None
        made.extend(Desktop.objects.filter(pool=pool).exclude(pk=first.pk).values_list("pk", flat=True))
        home = HomeDisk.objects.get(user=alice.member)
        assert home.attached_to_id == first.pk
        # Then the guest finds it by its serial and mounts it at /data
        guest.wait_for(f"{di.HOME_BANNER} mounted")
        # When a file is uploaded through the file manager (the guest agent: a running desktop has the home)
        data = os.urandom(200 * 1024 + 7)  # several 48 KiB agent chunks
        listing = _when_agent_answers(lambda: client.get("/api/v1/files/")).json()
        assert listing["via"] == "guest"
        assert _upload(client, "hello.bin", data)["via"] == "guest"
        # Then the guest sees it with the same bytes
        assert hashlib.sha256(data).hexdigest() in guest.run("sha256sum /data/hello.bin")
        # When the guest writes a file, it downloads with the same bytes
        guest.run("echo written-in-the-guest > /data/fromguest.txt; sync")
        assert _download(client, "fromguest.txt") == b"written-in-the-guest\n"

        # When the pooled desktop is released (recycled)
        Pool.objects.filter(pk=pool.pk).update(min_ready=0)  # no third boot
        request_stop(desktop=Desktop.objects.get(pk=first.pk), actor=alice.member)
        assert Desktop.objects.get(pk=first.pk).state == DesktopState.DELETED
        home.refresh_from_db()
        # Then the home is free, and its volume untouched by the recycle
        assert home.attached_to_id is None
        assert os.path.exists(home.volume_path)
        # And, disk encryption being on (the default) on this host, what the guest wrote is not in the file at rest
        assert home.encrypted and home.volume_path.endswith(".qcow2")
        assert not _file_contains(home.volume_path, b"written-in-the-guest")
        # And with no desktop running, upload and download still work, from the host side
        assert client.get("/api/v1/files/").json()["via"] == "host"
        assert hashlib.sha256(_download(client, "hello.bin")).digest() == hashlib.sha256(data).digest()
        assert _upload(client, "offline.txt", b"put while no desktop ran\n")["via"] == "host"

        # When the person claims the next warm desktop
        second = _warm_and_running(pool)
        Guest(second).wait_for(di.READY_BANNER)
        claimed, _ = pools.claim(tenant=alice.tenant, user=alice.member, template=demo_template)
        assert claimed.pk == second.pk
        guest = Guest(second)
        guest.wait_for(f"{di.HOME_BANNER} mounted")
        # Then it has every file: the upload, the guest's own, and the one put while no desktop ran
        shown = guest.run("ls /data; cat /data/offline.txt")
        assert "hello.bin" in shown and "fromguest.txt" in shown and "put while no desktop ran" in shown
    finally:
        from desktops.services.execution import remove_from_host

        for desktop in Desktop.objects.filter(pk__in=made):
            remove_from_host(desktop, release=True)
        for home in HomeDisk.objects.filter(tenant=alice.tenant):
            homes.delete_home_volume(home)
