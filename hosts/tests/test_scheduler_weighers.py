"""Scheduler weighers: spread fills the emptiest host first, pack the fullest that fits."""

from __future__ import annotations

import pytest

from hosts import scheduling
from hosts.choices import SchedulerStrategy
from hosts.scheduling import PlacementRequest
from hosts.tests.factories import HostFactory

pytestmark = pytest.mark.django_db


def request(desktop_id: int = 1) -> PlacementRequest:
    return PlacementRequest(desktop_id=desktop_id, vcpus=2, memory_mib=4096)


@pytest.fixture
def three_hosts():
    """Hosts of 64 GiB holding 48, 8 and 24 GiB (created in that order)."""
    return [HostFactory(allocated_memory_mib=gib * 1024) for gib in (48, 8, 24)]


def test_it_ranks_the_emptiest_host_first_when_spreading(settings, three_hosts):
    # given the spread strategy
    settings.SCHEDULER_STRATEGY = "spread"
    full, empty, middle = three_hosts
    # when ranking, then free RAM decides
    assert scheduling.rank(request()) == [empty.pk, middle.pk, full.pk]
    # and a placement lands on the emptiest host
    assert scheduling.place(request()).host_id == empty.pk


def test_it_ranks_the_fullest_fitting_host_first_when_packing(settings, three_hosts):
    # given the pack strategy
    settings.SCHEDULER_STRATEGY = "pack"
    full, empty, middle = three_hosts
    # when ranking, then the fullest host comes first
    assert scheduling.rank(request()) == [full.pk, middle.pk, empty.pk]
    assert scheduling.place(request()).host_id == full.pk


def test_it_packs_until_the_host_is_full_then_moves_on(settings):
    # given pack and two empty hosts with room for two 4 GiB desktops each (9 GiB, 1 GiB reserved)
    settings.SCHEDULER_STRATEGY = "pack"
    first, second = HostFactory(memory_mib=9 * 1024), HostFactory(memory_mib=9 * 1024)
    # when four desktops are placed
    hosts = [scheduling.place(request(n)).host_id for n in range(1, 5)]
    # then the first host is filled before the second is used
    assert hosts == [first.pk, first.pk, second.pk, second.pk]


def test_it_spreads_desktops_across_hosts_in_turn(settings):
    # given spread and two equal hosts
    settings.SCHEDULER_STRATEGY = "spread"
    first, second = HostFactory(), HostFactory()
    # when four desktops are placed, then they alternate (ties go to the lower id)
    hosts = [scheduling.place(request(n)).host_id for n in range(1, 5)]
    assert hosts == [first.pk, second.pk, first.pk, second.pk]


def test_it_weighs_ram_above_cpu(settings):
    # given one host short of RAM and another short of vCPUs (by the same fraction)
    settings.SCHEDULER_STRATEGY = "spread"
    low_ram = HostFactory(allocated_memory_mib=32 * 1024)
    low_cpu = HostFactory(allocated_vcpus=32)
    # when ranking, then the host with more free RAM wins
    assert scheduling.rank(request()) == [low_cpu.pk, low_ram.pk]


def test_it_uses_the_configured_strategy_in_the_weighers(settings):
    # given each strategy, when building the weighers, then pack negates spread
    spread = scheduling.weighers(SchedulerStrategy.SPREAD)
    pack = scheduling.weighers(SchedulerStrategy.PACK)
    assert [w.multiplier for w in spread] == [2.0, 1.0]
    assert [w.multiplier for w in pack] == [-2.0, -1.0]
    settings.SCHEDULER_STRATEGY = "fastest"
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="spread or pack"):
        scheduling.weighers()
