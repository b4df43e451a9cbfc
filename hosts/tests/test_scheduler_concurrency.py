"""Many workers placing at once on PostgreSQL: no host goes past its ratios, nothing is lost."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from django.db import connection, connections, transaction
from django.db.models import Count, F, Sum

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


# ------------------------------------------------------------- a claim meeting a host another claim holds


class _Holder(threading.Thread):
    """Another worker's claim in flight: it holds a host's row lock until told, then counts `then` on it."""

    def __init__(self, host_pk: int, *, then: tuple[int, int]) -> None:
        super().__init__()
        self.host_pk, self.then = host_pk, then
        self.locked, self.release = threading.Event(), threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                Host.objects.select_for_update().get(pk=self.host_pk)
                self.locked.set()
                self.release.wait(timeout=30)
                vcpus, memory_mib = self.then
                Host.objects.filter(pk=self.host_pk).update(
                    allocated_vcpus=F("allocated_vcpus") + vcpus,
                    allocated_memory_mib=F("allocated_memory_mib") + memory_mib,
                )
        finally:
            connections.close_all()


def _in_thread(call) -> tuple[threading.Thread, list]:
    """Run call in its own thread (its own connection); the list gets its result or the exception."""
    outcome: list = []

    def target() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # the assertions below name it
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def _wait_until_someone_waits_for_a_lock(timeout: float = 10.0) -> bool:
    """Whether another session of this database came to wait for a row lock within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("claim", ["statement", "steps"])
def test_a_placement_waits_for_a_host_another_claim_holds_instead_of_calling_it_full(settings, claim):
    require(connection.vendor == "postgresql", "PostgreSQL")
    settings.SCHEDULER_CLAIM = claim
    # Given the only host, locked by another worker's claim in flight (which leaves room for one more)
    host = HostFactory(cpus=4, cpu_ratio=1.0, memory_mib=8192, reserved_memory_mib=0)
    holder = _Holder(host.pk, then=(2, 4096))
    holder.start()
    assert holder.locked.wait(timeout=10)
    # When a desktop is placed meanwhile: SKIP LOCKED finds no free host, so it waits for that one's lock
    placer, outcome = _in_thread(lambda: scheduling.place(PlacementRequest(desktop_id=1, vcpus=2, memory_mib=4096)))
    waited = _wait_until_someone_waits_for_a_lock()
    holder.release.set()
    holder.join(timeout=30)
    placer.join(timeout=30)
    # Then once the other claim commits it is placed there, not refused as "full", and both count
    assert waited, outcome
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    assert outcome[0].host_id == host.pk
    host.refresh_from_db()
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (4, 8192)


@pytest.mark.django_db(transaction=True)
def test_a_move_whose_best_host_fills_up_meanwhile_goes_to_the_next_one():
    require(connection.vendor == "postgresql", "PostgreSQL")
    # Given a desktop on host a, and two other hosts: b, the roomiest, ranked first, and c
    a = HostFactory(name="a", cpus=8, cpu_ratio=1.0, memory_mib=16384, reserved_memory_mib=0)
    scheduling.place(PlacementRequest(desktop_id=1, vcpus=2, memory_mib=4096))
    b = HostFactory(name="b", cpus=16, cpu_ratio=1.0, memory_mib=32768, reserved_memory_mib=0)
    c = HostFactory(name="c", cpus=8, cpu_ratio=1.0, memory_mib=16384, reserved_memory_mib=0)
    assert scheduling.rank(PlacementRequest(desktop_id=1, vcpus=2, memory_mib=4096, exclude_host_ids={a.pk})) == [
        b.pk,
        c.pk,
    ]
    # and another worker's claim in flight on b that will take all of it
    holder = _Holder(b.pk, then=(16, 32768))
    holder.start()
    assert holder.locked.wait(timeout=10)
    # When the desktop is relocated meanwhile (it ranks b first and waits for b's lock)
    mover, outcome = _in_thread(lambda: scheduling.relocate(PlacementRequest(desktop_id=1, vcpus=2, memory_mib=4096)))
    waited = _wait_until_someone_waits_for_a_lock()
    holder.release.set()
    holder.join(timeout=30)
    mover.join(timeout=30)
    # Then, b being full now, the claim moves to c: b is not pushed past its room, a is empty
    assert waited, outcome
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    assert outcome[0].host_id == c.pk
    assert Allocation.objects.get(desktop_id=1).host_id == c.pk
    counters = {h.name: (h.allocated_vcpus, h.allocated_memory_mib) for h in Host.objects.all()}
    assert counters == {"a": (0, 0), "b": (16, 32768), "c": (2, 4096)}
