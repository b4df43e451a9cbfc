"""Resizing a placed desktop: it grows only into room its host has, and can always shrink."""

from __future__ import annotations

import pytest

from hosts import scheduling
from hosts.models import Allocation, Host
from hosts.scheduling import PlacementRequest
from hosts.tests.factories import HostFactory

pytestmark = pytest.mark.django_db


def _counted(host: Host) -> tuple[int, int]:
    host.refresh_from_db()
    return host.allocated_vcpus, host.allocated_memory_mib


def _held(desktop_id: int) -> tuple[int, int]:
    allocation = Allocation.objects.get(desktop_id=desktop_id)
    return allocation.vcpus, allocation.memory_mib


@pytest.fixture
def host() -> Host:
    # Room for exactly 4 vCPUs and 8 GiB: no overcommit, nothing reserved
    return HostFactory(cpus=4, cpu_ratio=1, memory_mib=8192, reserved_memory_mib=0, ram_ratio=1)


def test_it_grows_a_desktop_up_to_exactly_what_its_host_holds_and_no_further(host):
    # Given a desktop of 2 vCPUs and 4 GiB and a neighbour of 1 vCPU and 1 GiB on the host
    scheduling.place(PlacementRequest(desktop_id=1, vcpus=2, memory_mib=4096))
    scheduling.place(PlacementRequest(desktop_id=2, vcpus=1, memory_mib=1024))
    # When it grows to fill the host exactly, then it may
    assert scheduling.resize(1, vcpus=3, memory_mib=7168) is True
    assert _counted(host) == (4, 8192) and _held(1) == (3, 7168)
    # When it asks for one vCPU more, or one MiB more, than is left, then it is refused and nothing changes
    assert scheduling.resize(1, vcpus=4, memory_mib=7168) is False
    assert scheduling.resize(1, vcpus=3, memory_mib=7169) is False
    assert _counted(host) == (4, 8192) and _held(1) == (3, 7168)


def test_it_always_lets_a_desktop_shrink_even_on_an_overfull_host(host):
    # Given a host that is over its capacity (the operator lowered its overcommit after placing)
    scheduling.place(PlacementRequest(desktop_id=1, vcpus=4, memory_mib=8192))
    Host.objects.filter(pk=host.pk).update(cpus=2, memory_mib=4096)
    # When the desktop shrinks in memory only, or in vCPUs only, or in both, then it may each time
    assert scheduling.resize(1, vcpus=4, memory_mib=6144) is True
    assert scheduling.resize(1, vcpus=3, memory_mib=6144) is True
    assert scheduling.resize(1, vcpus=1, memory_mib=1024) is True
    # And the host counts only what it holds now
    assert _counted(host) == (1, 1024) and _held(1) == (1, 1024)


def test_it_has_nothing_to_resize_for_a_desktop_never_placed_and_refuses_an_empty_size(host):
    assert scheduling.resize(99, vcpus=64, memory_mib=1_000_000) is True
    assert not Allocation.objects.exists() and _counted(host) == (0, 0)
    for vcpus, memory_mib in ((0, 1024), (1, 0)):
        with pytest.raises(ValueError, match=r"^a desktop holds at least 1 vCPU and 1 MiB$"):
            scheduling.resize(1, vcpus=vcpus, memory_mib=memory_mib)


def test_it_shrinks_to_the_smallest_size_and_never_counts_below_zero(host):
    scheduling.place(PlacementRequest(desktop_id=1, vcpus=2, memory_mib=4096))
    assert scheduling.resize(1, vcpus=1, memory_mib=1) is True
    assert _counted(host) == (1, 1) and _held(1) == (1, 1)
    # Given counters that drifted below what the desktop holds (repaired later by resync_counters)
    Host.objects.filter(pk=host.pk).update(allocated_vcpus=0, allocated_memory_mib=0)
    Allocation.objects.filter(desktop_id=1).update(vcpus=2, memory_mib=4096)
    # When it shrinks, the host's counters stay at zero, neither negative nor raised
    assert scheduling.resize(1, vcpus=1, memory_mib=1024) is True
    assert _counted(host) == (0, 0)
