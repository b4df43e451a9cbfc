"""Memory overcommit: running desktops count at what they measure, and a guard keeps hosts from swapping."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, connections

from hosts import scheduling
from hosts.errors import NoCapacity
from hosts.hypervisor import GuestMemory, MemoryFacts, get_hypervisor
from hosts.models import Allocation, Host
from hosts.scheduling import PlacementRequest
from hosts.services import health
from hosts.services.hosts import register_host, update_host
from hosts.tests.factories import HostFactory
from hosts.tests.libvirt_hosts import SMALL_URI
from hosts.tests.test_hypervisor_domain import make_spec
from tests.services import require

pytestmark = pytest.mark.django_db


def request(desktop_id: int, memory_mib: int) -> PlacementRequest:
    return PlacementRequest(desktop_id=desktop_id, vcpus=1, memory_mib=memory_mib)


def measure(host: Host, available_mib: int, **used_mib: int) -> None:
    """What a heartbeat would store: the host's available memory and each running desktop's use (d<id>=MiB)."""
    guests = tuple(GuestMemory(desktop_id=int(key[1:]), used_mib=mib) for key, mib in used_mib.items())
    health.store_memory_facts(host_id=host.pk, facts=MemoryFacts(available_mib=available_mib, guests=guests))


def full_host(**fields) -> Host:
    """8 GiB, 1 GiB reserved, two running desktops of 3.5 GiB each: 7168 MiB, full at ratio 1.0."""
    host = HostFactory(cpus=64, memory_mib=8192, reserved_memory_mib=1024, **fields)
    for desktop_id in (1, 2):
        scheduling.place(request(desktop_id, 3584))
    return host


def test_overcommit_places_a_desktop_that_ratio_one_refuses_when_guests_measure_low():
    # given a host full by allocation whose two desktops measure 700 MiB each, with 6000 MiB available
    host = full_host()
    measure(host, 6000, d1=700, d2=700)
    # when a third desktop of 3.5 GiB is asked for at ratio 1.0, then the host is full, as it always was
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(3, 3584))
    assert caught.value.reason == "full"
    # when the operator lets it overcommit 1.5x
    update_host(host=host, changes={"ram_ratio": 1.5})
    placement = scheduling.place(request(3, 3584))
    # then it fits: 10752 MiB allocated of (8192 - 1024) x 1.5, the load 700 + 700 + 3584 within 7168 MiB
    host.refresh_from_db()
    assert placement.host_id == host.pk
    assert (host.allocated_memory_mib, host.memory_load_mib) == (10752, 4984)


def test_overcommit_counts_desktops_not_measured_at_their_whole_allocation():
    # given the same host at ratio 1.5 whose desktops were never measured (stopped, or just placed)
    host = full_host(ram_ratio=1.5)
    measure(host, 8000)
    # when a third desktop is asked for, then the allocation ratio alone is not enough: they may use all of it
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(3, 3584))
    assert caught.value.reason == "full"
    assert Host.objects.get(pk=host.pk).allocated_memory_mib == 7168


def test_the_swap_guard_refuses_a_host_that_would_run_short_of_free_memory():
    # given an overcommitting host whose desktops measure low but whose own processes leave 4000 MiB available
    host = full_host(ram_ratio=1.5)
    measure(host, 4000, d1=700, d2=700)
    # when a desktop needing 3.5 GiB is asked for: 4000 - 3584 is below the 1024 MiB reserve
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(3, 3584))
    # then the guard refuses it, by name, and nothing is counted
    assert caught.value.reason == "host_would_swap"
    assert "would swap" in caught.value.detail
    assert not Allocation.objects.filter(desktop_id=3).exists()
    # and a host already below its reserve (swapping) takes not even a small one
    measure(host, 900, d1=700, d2=700)
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(4, 64))
    assert caught.value.reason == "host_would_swap"
    # while a small desktop fits once memory is available again
    measure(host, 3000, d1=700, d2=700)
    assert scheduling.place(request(4, 1024)).host_id == host.pk


def test_ratio_one_places_by_allocation_alone_whatever_the_measurements_say():
    # given a host at ratio 1.0 that reports no memory available and desktops measured above their allocation
    host = HostFactory(cpus=64, memory_mib=8192, reserved_memory_mib=1024)
    scheduling.place(request(1, 3584))
    measure(host, 0, d1=6000)
    # when the rest of its room is asked for, then it fits exactly as before, and one MiB more does not
    assert scheduling.place(request(2, 3584)).host_id == host.pk
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(3, 1))
    assert caught.value.reason == "full"
    assert scheduling.fits_count(vcpus=1, memory_mib=1) == 0


def test_a_released_or_resized_desktop_leaves_the_measured_totals():
    # given two measured desktops on an overcommitting host
    host = full_host(ram_ratio=1.5)
    measure(host, 6000, d1=700, d2=500)
    host.refresh_from_db()
    assert (host.used_memory_mib, host.measured_allocation_mib) == (1200, 7168)
    # when one is released and the other resized, then neither counts as measured any more
    scheduling.release(1)
    assert scheduling.resize(2, vcpus=1, memory_mib=2048)
    host.refresh_from_db()
    assert (host.allocated_memory_mib, host.used_memory_mib, host.measured_allocation_mib) == (2048, 0, 0)
    assert Allocation.objects.get(desktop_id=2).measured_memory_mib is None
    # and a heartbeat's repair finds nothing to change
    assert scheduling.resync_counters(host.pk) is False
    host.refresh_from_db()
    assert (host.used_memory_mib, host.measured_allocation_mib) == (0, 0)


def test_the_heartbeat_measures_running_desktops_on_the_test_driver():
    # given a registered test-driver host with one running Quetzal domain and one defined but stopped
    host = register_host(SMALL_URI, name="small")
    scheduling.place(request(501, 2048))
    scheduling.place(request(502, 1024))
    hv = get_hypervisor(SMALL_URI)  # the heartbeat's own connection: test-driver state is per connection
    running = make_spec(name=f"qt-{uuid.uuid4().hex[:8]}", uuid=str(uuid.uuid4()), desktop_id=501, virt_type="qemu")
    stopped = make_spec(name=f"qt-{uuid.uuid4().hex[:8]}", uuid=str(uuid.uuid4()), desktop_id=502, virt_type="qemu")
    try:
        hv.define(running)
        hv.define(stopped)
        hv.start(running.name)
        # when a heartbeat runs
        host = health.heartbeat(host_id=host.pk)
    finally:
        for spec in (running, stopped):
            hv.undefine(spec.name)
        hv.close()
    # then the running desktop is measured (the test driver's balloon: 2 GiB actual, 1 GiB unused) and the
    # stopped one is not; the test driver has no KSM, so merged pages are unknown
    assert Allocation.objects.get(desktop_id=501).measured_memory_mib == 1024
    assert Allocation.objects.get(desktop_id=502).measured_memory_mib is None
    assert (host.used_memory_mib, host.measured_allocation_mib) == (1024, 2048)
    assert host.memory_load_mib == 1024 + 1024
    assert (host.merged_memory_mib, host.memory_merging) == (None, None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("claim", ["statement", "steps"])
def test_two_placements_racing_for_the_last_free_memory_get_one_host_between_them(settings, claim):
    require(connection.vendor == "postgresql", "PostgreSQL")
    settings.SCHEDULER_CLAIM = claim
    # given an overcommitting host with room by its ratio and measured load for two more 2 GiB desktops,
    # but free memory for one only: 4500 - 2048 - 1024 >= 0, 4500 - 2 x 2048 - 1024 < 0
    host = HostFactory(cpus=64, memory_mib=16384, reserved_memory_mib=1024, ram_ratio=1.5)
    for desktop_id in range(1, 5):
        scheduling.place(request(desktop_id, 3072))
    measure(host, 4500, d1=512, d2=512, d3=512, d4=512)
    barrier = threading.Barrier(2)
    outcomes: list = []
    lock = threading.Lock()

    def place(desktop_id: int) -> None:
        try:
            barrier.wait()
            result: object = scheduling.place(request(desktop_id, 2048))
        except NoCapacity as exc:
            result = exc.reason
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    # when two placements race for it, each on its own connection
    threads = [threading.Thread(target=place, args=(desktop_id,)) for desktop_id in (10, 11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then one is placed and the other refused by the guard, and the host counts one
    assert [o for o in outcomes if isinstance(o, str)] == ["host_would_swap"], outcomes
    assert [o.host_id for o in outcomes if not isinstance(o, str)] == [host.pk], outcomes
    host.refresh_from_db()
    assert host.allocated_memory_mib == 4 * 3072 + 2048
    assert Allocation.objects.filter(desktop_id__in=(10, 11)).count() == 1


def test_a_moved_desktop_leaves_its_measurement_on_the_host_it_left():
    # given a measured desktop on an overcommitting host, and an empty host beside it
    source = full_host(ram_ratio=1.5)
    measure(source, 6000, d1=700, d2=500)
    target = HostFactory(cpus=64, memory_mib=16384)
    # when desktop 1 moves there
    placement = scheduling.relocate(request(1, 3584), target_host_id=target.pk)
    # then the source counts only desktop 2 as measured, and the target counts desktop 1 at its allocation
    source.refresh_from_db()
    target.refresh_from_db()
    assert placement.host_id == target.pk
    assert (source.allocated_memory_mib, source.used_memory_mib, source.measured_allocation_mib) == (3584, 500, 3584)
    assert (target.allocated_memory_mib, target.used_memory_mib, target.memory_load_mib) == (3584, 0, 3584)
    assert Allocation.objects.get(desktop_id=1).measured_memory_mib is None
