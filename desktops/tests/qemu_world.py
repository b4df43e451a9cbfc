"""A real libvirtd + QEMU host, the demo template on it, and real Celery worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from desktops.models import DesktopTemplate
from hosts.models import Host
from tests.services import port_open, require

ROOT = Path(__file__).resolve().parents[2]
QEMU_URI = os.environ.get("QUETZAL_TEST_QEMU_URI", "qemu:///system")


def libvirtd_answers() -> bool:
    try:
        from hosts.hypervisor import HypervisorError, get_hypervisor

        get_hypervisor(QEMU_URI).host_info()
        return True
    except (ImportError, HypervisorError):
        return False


def wait_until(predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.1) -> object:
    """Poll until predicate() is truthy and return it; fail the test on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {getattr(predicate, '__name__', 'a condition')}")


@pytest.fixture
def qemu_host(transactional_db) -> Iterator[Host]:
    """qemu:///system registered as a host (software emulation: nested KVM is not dependable here)."""
    require(libvirtd_answers(), f"libvirtd at {QEMU_URI} (run scripts/start-libvirtd)")
    from hosts.services.hosts import register_host

    host = register_host(QEMU_URI, name="local-qemu", virt_type="qemu", reserved_memory_mib=512)
    yield host


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


class Worker:
    """A real `celery worker` process against the test database and Redis."""

    def __init__(self, log_path: Path) -> None:
        db = connection.settings_dict
        env = dict(
            os.environ,
            DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            REDIS_URL=settings.REDIS_URL,
            PYTHONUNBUFFERED="1",
        )
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "quetzal",
                "worker",
                "-l",
                "INFO",
                "-c",
                "1",
                "-P",
                "prefork",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"test-{os.getpid()}-{time.time_ns()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: b"ready." in log_path.read_bytes(), 60)

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and pool children), as a crash or OOM would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def start_worker(tmp_path) -> Iterator[Callable[[], Worker]]:
    """Start real worker processes; they are stopped at the end of the test."""
    require(settings.REDIS_URL is not None and port_open("127.0.0.1", 6379), "Redis (REDIS_URL)")
    require(connection.vendor == "postgresql", "PostgreSQL (workers share the test database)")
    from quetzal.celery import app

    app.control.purge()
    workers: list[Worker] = []

    def start() -> Worker:
        worker = Worker(tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    app.control.purge()
