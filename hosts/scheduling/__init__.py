"""Placement of desktops on hosts: the API other apps call (the modules below are its parts).

`placement` ranks and claims, `filters` and `weighers` are the SQL rules it applies, `request`
holds what a placement asks for and returns, `sql` the fragments they share.
"""

from __future__ import annotations

from hosts.scheduling.filters import FILTERS, HostFilter
from hosts.scheduling.moves import relocate, return_to
from hosts.scheduling.placement import (
    bounded_mib,
    fits_count,
    place,
    rank,
    record_guest_memory,
    release,
    resize,
    resync_counters,
)
from hosts.scheduling.request import GpuNeed, Placement, PlacementRequest, parse_gpu_profile
from hosts.scheduling.weighers import weighers

__all__ = [
    "FILTERS",
    "GpuNeed",
    "HostFilter",
    "Placement",
    "PlacementRequest",
    "bounded_mib",
    "fits_count",
    "parse_gpu_profile",
    "place",
    "rank",
    "record_guest_memory",
    "release",
    "relocate",
    "resize",
    "resync_counters",
    "return_to",
    "weighers",
]
