"""Nova-style weighers: spread (emptiest host first) or pack (fullest host that fits first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hosts import conf
from hosts.choices import SchedulerStrategy
from hosts.scheduling.sql import MEMORY_CAPACITY, VCPU_CAPACITY, host


@dataclass(frozen=True)
class Weigher:
    """A host's free fraction of one resource in [0, 1] as SQL; 1 is an empty host."""

    name: ClassVar[str] = ""
    multiplier: float = 1.0

    def sql(self) -> str:
        raise NotImplementedError


class RamWeigher(Weigher):
    name = "ram"

    def sql(self) -> str:
        return f"(({MEMORY_CAPACITY} - {host('allocated_memory_mib')}) / NULLIF({MEMORY_CAPACITY}, 0))"


class CpuWeigher(Weigher):
    name = "cpu"

    def sql(self) -> str:
        return f"(({VCPU_CAPACITY} - {host('allocated_vcpus')}) / NULLIF({VCPU_CAPACITY}, 0))"


def weighers(strategy: SchedulerStrategy | None = None) -> tuple[Weigher, ...]:
    """RAM then CPU, positive for spread and negative for pack."""
    strategy = strategy or conf.scheduler_strategy()
    sign = 1.0 if strategy == SchedulerStrategy.SPREAD else -1.0
    # RAM counts double: it runs out first on desktop hosts, where CPU is overcommitted.
    return (RamWeigher(multiplier=2.0 * sign), CpuWeigher(multiplier=1.0 * sign))


# Outweighs every free-capacity term (each in [0, 1] times its multiplier): the preferred host wins when it passes.
PREFERRED_HOST_WEIGHT = 100.0


def weight_sql(strategy: SchedulerStrategy | None = None, prefer_host_id: int | None = None) -> tuple[str, list]:
    """The summed weight of a host as SQL (higher is better); filtered hosts never divide by zero.

    `prefer_host_id` (the host keeping the person's home disk) comes first whenever the filters let it through.
    """
    terms, params = [], []
    for weigher in weighers(strategy):
        terms.append(f"(%s * {weigher.sql()})")
        params.append(weigher.multiplier)
    if prefer_host_id is not None:
        terms.append(f"(CASE WHEN {host('id')} = %s THEN %s ELSE 0 END)")
        params += [prefer_host_id, PREFERRED_HOST_WEIGHT]
    return " + ".join(terms), params
