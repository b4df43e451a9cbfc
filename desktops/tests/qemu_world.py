"""A real libvirtd + QEMU host, the demo template on it, and real Celery worker processes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from desktops.models import DesktopTemplate
from hosts.models import Host
from tests.processes import Child, child_env, require_shared_services, start_celery_worker
from tests.services import require

QEMU_URI = os.environ.get("QUETZAL_TEST_QEMU_URI", "qemu:///system")


def libvirtd_answers() -> bool:
    try:
        from hosts.hypervisor import HypervisorError, get_hypervisor

        get_hypervisor(QEMU_URI).host_info()
        return True
    except (ImportError, HypervisorError):
        return False


class Heartbeat(threading.Thread):
    """The beat's host heartbeat, as production runs it: a test that builds an image or boots slowly on a busy
    machine outlives HOST_DOWN_AFTER_S, and its host would count as down (no placement) without one."""

    def __init__(self, host_id: int) -> None:
        super().__init__(name=f"heartbeat-{host_id}", daemon=True)
        self.host_id = host_id
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connections

        from hosts import conf
        from hosts.services import health

        try:
            while not self.stopping.wait(conf.heartbeat_interval_s()):
                health.heartbeat(host_id=self.host_id)
        finally:
            connections.close_all()  # this thread's own connection: left open, it would block dropping the database

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


@pytest.fixture
def qemu_host(transactional_db) -> Iterator[Host]:
    """qemu:///system registered as a host (software emulation: nested KVM is not dependable here), kept up by a
    heartbeat as the beat would."""
    require(libvirtd_answers(), f"libvirtd at {QEMU_URI} (run scripts/start-libvirtd)")
    from hosts.services.hosts import register_host

    host = register_host(QEMU_URI, name="local-qemu", virt_type="qemu", reserved_memory_mib=512)
    beat = Heartbeat(host.pk)
    beat.start()
    yield host
    beat.stop()
    # The spare encrypted disks a launch's background refill made there (desktops.services.disk_keys);
    # the workers that make them are stopped by now (their fixture came later, so it ends first).
    from desktops.models import DataKey
    from hosts.hypervisor import get_hypervisor

    hv = get_hypervisor(QEMU_URI)
    for path in (
        DataKey.objects.filter(host=host, desktop__isnull=True)
        .exclude(spare_path="")
        .values_list("spare_path", flat=True)
    ):
        hv.encrypted_file_delete(path)
    # The people's home disks the test's desktops made there: they outlive desktops by design, not the test's
    # database (a suite left dozens behind in the pool). One still held by a domain is left to its own cleanup.
    from desktops.models import HomeDisk
    from hosts.hypervisor import HypervisorError

    for volume in HomeDisk.objects.filter(host=host).exclude(volume_name="").values_list("volume_name", flat=True):
        with contextlib.suppress(HypervisorError):
            hv.volume_delete(host.storage_pool, volume)


@pytest.fixture
def demo_template(qemu_host) -> Iterator[DesktopTemplate]:
    """The Demo Linux image copied to the host and its template."""
    from django.core.management import call_command

    from hosts.hypervisor import get_hypervisor
    from hosts.services import images

    call_command("build_demo_image", "--no-copy", stdout=open(os.devnull, "w"))  # noqa: SIM115
    template = DesktopTemplate.objects.get(name="Demo Linux")
    images.copy_image_to_host(image=template.image, host=qemu_host)
    yield template
    hv = get_hypervisor(qemu_host.uri)
    for volume in images.volume_names(template.image):
        hv.volume_delete(qemu_host.storage_pool, volume)


@pytest.fixture
def start_worker(tmp_path) -> Iterator[Callable[[], Child]]:
    """Start real worker processes; they are stopped at the end of the test."""
    require_shared_services("a worker")
    from quetzal.celery import app

    app.control.purge()
    workers: list[Child] = []

    def start() -> Child:
        # One prefork child, as in production: a SIGKILL of the group is a crash of the whole worker.
        options = ["-c", "1", "-P", "prefork", "-n", f"test-{os.getpid()}-{time.time_ns()}@%h"]
        worker = start_celery_worker(env=child_env(), log_path=tmp_path / f"worker-{len(workers)}.log", options=options)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    app.control.purge()
