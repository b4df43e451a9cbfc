"""Many workers placing at once on PostgreSQL: no host goes past its ratios, nothing is lost."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.db import connection, connections
from django.db.models import Count, Sum

from hosts import scheduling
from hosts.errors import NoCapacity
from hosts.models import Allocation, Host, HostDevice
from hosts.scheduling import PlacementRequest
from hosts.tests.factories import HostDeviceFactory, HostFactory
from tests.services import require

WORKERS = 16
PER_WORKER = 25
SHARED_DESKTOP = 1_000_000


def _worker(index: int, barrier: threading.Barrier, outcomes: list, lock: threading.Lock) -> None:
    rng = random.Random(index)
    mine = []
    try:
        barrier.wait()
        # Every worker places the same desktop at once: one allocation, one answer for all.
        placement = scheduling.place(PlacementRequest(desktop_id=SHARED_DESKTOP, vcpus=1, memory_mib=256))
        with lock:
            outcomes.append(("shared", SHARED_DESKTOP, placement.host_id))
        for n in range(PER_WORKER):
            desktop_id = index * 1000 + n
            profile = rng.choice(["none"] * 6 + ["passthrough", "mdev:nvidia-63"])
            req = PlacementRequest(
                desktop_id=desktop_id,
                vcpus=rng.randint(1, 3),
                memory_mib=rng.choice([512, 1024, 2048]),
                gpu_profile=profile,
            )
            try:
                placement = scheduling.place(req)
                outcome = ("placed", desktop_id, placement.host_id)
                mine.append(desktop_id)
            except NoCapacity:
                outcome = ("no_capacity", desktop_id, None)
            except Exception as exc:  # anything else is a bug this test must report
                outcome = ("error", desktop_id, repr(exc))
            with lock:
                outcomes.append(outcome)
            if n % 4 == 3 and mine:
                # Releases race with placements too; they must give back exactly what was held.
                released = mine.pop(0)
                scheduling.release(released)
                with lock:
                    outcomes.append(("released", released, None))
    except Exception as exc:
        with lock:
            outcomes.append(("error", None, repr(exc)))
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_it_never_pushes_a_host_past_its_ratios_under_concurrent_placements():
    require(connection.vendor == "postgresql", "PostgreSQL")
    # given small hosts (demand is about three times the room) and a few GPUs
    hosts = [
        HostFactory(cpus=2, cpu_ratio=4.0, memory_mib=9 * 1024, reserved_memory_mib=1024),
        HostFactory(cpus=4, cpu_ratio=2.0, memory_mib=7 * 1024, reserved_memory_mib=1024),
        HostFactory(cpus=3, cpu_ratio=3.0, memory_mib=12 * 1024, reserved_memory_mib=2048),
        HostFactory(cpus=8, cpu_ratio=1.0, memory_mib=6 * 1024, reserved_memory_mib=1024, ram_ratio=1.5),
    ]
    HostDeviceFactory(host=hosts[0])
    HostDeviceFactory(host=hosts[1], mdev_types={"nvidia-63": {"max_instances": 3}})
    HostDeviceFactory(host=hosts[2], mdev_types={"nvidia-63": {"max_instances": 2}})
    barrier = threading.Barrier(WORKERS)
    outcomes: list = []
    lock = threading.Lock()
    threads = [threading.Thread(target=_worker, args=(i, barrier, outcomes, lock)) for i in range(WORKERS)]
    # when every worker places and releases desktops at the same moment
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker hung (deadlock?)"
    # then every placement either succeeded or got no_capacity, and both happened
    kinds = Counter(kind for kind, *_ in outcomes)
    assert kinds["error"] == 0, [o for o in outcomes if o[0] == "error"][:5]
    assert kinds["placed"] + kinds["no_capacity"] == WORKERS * PER_WORKER
    assert kinds["placed"] > 0 and kinds["no_capacity"] > 0, kinds
    # and no host is past its ratios, with counters equal to what the allocations hold
    for host in Host.objects.all():
        totals = Allocation.objects.filter(host=host).aggregate(v=Sum("vcpus"), m=Sum("memory_mib"))
        assert host.allocated_vcpus <= host.vcpu_capacity, host.name
        assert host.allocated_memory_mib <= host.memory_capacity_mib, host.name
        assert (host.allocated_vcpus, host.allocated_memory_mib) == (totals["v"] or 0, totals["m"] or 0)
    # and no GPU is oversubscribed or shared between passthrough and vGPUs
    for device in HostDevice.objects.annotate(held=Count("allocations")):
        assert device.held == (1 if device.assigned_desktop_id else device.mdev_instances_used)
        assert device.mdev_instances_used <= max(device.mdev_capacity, 0)
    # and placed-minus-released desktops are exactly the allocations (the shared one once)
    placed = {d for kind, d, _ in outcomes if kind == "placed"}
    released = {d for kind, d, _ in outcomes if kind == "released"}
    assert set(Allocation.objects.values_list("desktop_id", flat=True)) == (placed - released) | {SHARED_DESKTOP}
    shared_hosts = {h for kind, _, h in outcomes if kind == "shared"}
    assert len(shared_hosts) == 1 and kinds["shared"] == WORKERS
