"""A host's capacity has one formula in Python (pages, admin) and one in SQL (placement): they agree."""

from __future__ import annotations

import math

import pytest
from django.db import connection

from hosts.scheduling.sql import HOST, MEMORY_CAPACITY, VCPU_CAPACITY
from hosts.tests.factories import HostFactory

pytestmark = pytest.mark.django_db

# Whole and fractional ratios, a reserve larger than the RAM, and ratios whose products are not exact in binary.
HOSTS = [
    {"cpus": 16, "cpu_ratio": 4.0, "memory_mib": 64 * 1024, "reserved_memory_mib": 1024, "ram_ratio": 1.0},
    {"cpus": 3, "cpu_ratio": 0.7, "memory_mib": 7000, "reserved_memory_mib": 333, "ram_ratio": 1.3},
    {"cpus": 2, "cpu_ratio": 3.3, "memory_mib": 512, "reserved_memory_mib": 1024, "ram_ratio": 1.5},
    {"cpus": 0, "cpu_ratio": 64.0, "memory_mib": 0, "reserved_memory_mib": 0, "ram_ratio": 8.0},
]


@pytest.mark.parametrize("fields", HOSTS)
def test_it_computes_the_same_capacity_in_python_and_in_sql(fields):
    # Given a host
    host = HostFactory(**fields)
    # When the database evaluates the placement formulas over its row
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {VCPU_CAPACITY}, {MEMORY_CAPACITY} FROM {HOST} WHERE id = %s", [host.pk])
        vcpus, memory = cursor.fetchone()
    # Then the largest whole request SQL admits is what the model reports (none when negative)
    assert host.vcpu_capacity == max(0, math.floor(vcpus))
    assert host.memory_capacity_mib == max(0, math.floor(memory))
