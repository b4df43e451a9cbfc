"""Moving a desktop's claim to another host, and the single-statement claim path."""

from __future__ import annotations

import pytest

from hosts import scheduling
from hosts.errors import NoCapacity
from hosts.models import Allocation, Host
from hosts.scheduling import PlacementRequest
from hosts.tests.factories import HostFactory

pytestmark = pytest.mark.django_db


def request(desktop_id: int = 1, **overrides) -> PlacementRequest:
    return PlacementRequest(**{"desktop_id": desktop_id, "vcpus": 2, "memory_mib": 4096, **overrides})


def _counters() -> dict[str, tuple[int, int]]:
    return {h.name: (h.allocated_vcpus, h.allocated_memory_mib) for h in Host.objects.all()}


def test_it_moves_the_claim_to_the_best_other_host():
    # Given a desktop placed on the first of three hosts, the third one emptier than the second
    first, second, third = HostFactory(name="a"), HostFactory(name="b"), HostFactory(name="c")
    scheduling.place(request(1))
    assert Allocation.objects.get(desktop_id=1).host_id == first.pk
    scheduling.place(request(2))  # lands on b: spread
    # When the desktop is relocated
    moved = scheduling.relocate(request(1))
    # Then its claim is on the emptiest other host, and the counters moved with it
    assert moved.host_id == third.pk
    assert Allocation.objects.get(desktop_id=1).host_id == third.pk
    assert _counters() == {"a": (0, 0), "b": (2, 4096), "c": (2, 4096)}
    assert second.pk != moved.host_id


def test_it_moves_to_the_host_named_only_when_it_fits():
    # Given a placed desktop and a second host too small for it
    HostFactory(name="a")
    small = HostFactory(name="small", memory_mib=3 * 1024, reserved_memory_mib=0)
    scheduling.place(request(1))
    # When it is moved to the small host, then it is refused naming why, and nothing moved
    with pytest.raises(NoCapacity):
        scheduling.relocate(request(1), target_host_id=small.pk)
    assert _counters() == {"a": (2, 4096), "small": (0, 0)}


def test_it_puts_the_claim_back_after_a_failed_move():
    # Given a desktop relocated from a to b
    a, b = HostFactory(name="a"), HostFactory(name="b")
    scheduling.place(request(1))
    scheduling.relocate(request(1), target_host_id=b.pk)
    # When the migration failed and the claim is returned
    scheduling.return_to(1, a.pk)
    # Then it counts on a again, once
    assert Allocation.objects.get(desktop_id=1).host_id == a.pk
    assert _counters() == {"a": (2, 4096), "b": (0, 0)}


def test_it_refuses_to_move_a_desktop_never_placed():
    HostFactory()
    with pytest.raises(Exception) as error:
        scheduling.relocate(request(9))
    assert getattr(error.value, "code", "") == "not_placed"


@pytest.mark.parametrize("claim", ["statement", "steps"])
def test_it_places_the_same_way_on_either_claim_path(settings, claim):
    # Given three hosts and either claim path
    settings.SCHEDULER_CLAIM = claim
    for name in "abc":
        HostFactory(name=name)
    # When six desktops are placed, then they spread two per host and the counters match the allocations
    for desktop_id in range(1, 7):
        scheduling.place(request(desktop_id))
    assert _counters() == {name: (4, 8192) for name in "abc"}
    assert Allocation.objects.count() == 6


def test_it_undoes_a_repeated_single_statement_claim(settings):
    settings.SCHEDULER_CLAIM = "statement"
    host = HostFactory()
    placed = scheduling.place(request(1))
    # When the same desktop is placed again (a retried task), then the unique allocation undoes the
    # whole statement: the host keeps one desktop's worth, not two
    assert scheduling.place(request(1)) == placed
    assert Allocation.objects.count() == 1
    host.refresh_from_db()
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (2, 4096)
