"""Placement prefers the host keeping the person's home disk, while the filters still decide."""

from __future__ import annotations

import pytest

from hosts import scheduling
from hosts.scheduling import PlacementRequest
from hosts.tests.factories import HostFactory

pytestmark = pytest.mark.django_db


def test_it_places_on_the_home_host_although_spread_prefers_an_emptier_one():
    # given an empty host and a half-full one that keeps the person's home
    HostFactory()
    home_host = HostFactory(allocated_vcpus=32, allocated_memory_mib=32 * 1024)
    # when a desktop of that person is placed
    placement = scheduling.place(PlacementRequest(desktop_id=1, vcpus=2, memory_mib=4096, prefer_host_id=home_host.pk))
    # then it lands where the home is
    assert placement.host_id == home_host.pk


def test_it_places_elsewhere_when_the_home_host_is_excluded_by_a_filter():
    # given the home's host in maintenance
    other = HostFactory()
    home_host = HostFactory(maintenance=True)
    # when a desktop of that person is placed
    placement = scheduling.place(PlacementRequest(desktop_id=2, vcpus=2, memory_mib=4096, prefer_host_id=home_host.pk))
    # then the filter wins over the preference
    assert placement.host_id == other.pk
