"""Pure arithmetic: rates from two readings of a domain's cumulative counters (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from hosts.hypervisor import DomainStats

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Counters:
    """A domain's cumulative counters at one instant (seconds since the epoch)."""

    at: float
    cpu_time_ns: int
    vcpus: int
    disk_read_bytes: int
    disk_write_bytes: int
    net_rx_bytes: int
    net_tx_bytes: int

    @classmethod
    def from_stats(cls, stats: DomainStats, *, at: float) -> Counters:
        """The counters of one getAllDomainStats record."""
        return cls(
            at=at,
            cpu_time_ns=stats.cpu_time_ns,
            vcpus=stats.vcpus,
            disk_read_bytes=stats.disk_rd_bytes,
            disk_write_bytes=stats.disk_wr_bytes,
            net_rx_bytes=stats.net_rx_bytes,
            net_tx_bytes=stats.net_tx_bytes,
        )


@dataclass(frozen=True)
class Rates:
    """What happened between two readings; None where it cannot be known."""

    cpu_percent: float | None = None
    cpu_cores: float | None = None
    disk_read_bps: float | None = None
    disk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None


NO_RATES = Rates()


def _per_second(before: int, after: int, elapsed_s: float) -> float | None:
    """A counter's growth per second; None when it went backwards (the VM restarted, a disk was swapped)."""
    if after < before:
        return None
    return (after - before) / elapsed_s


def rates(previous: Counters | None, current: Counters) -> Rates:
    """CPU % of the domain's own vCPUs and bytes per second, from the counters' deltas over wall time."""
    if previous is None:
        return NO_RATES
    elapsed_s = current.at - previous.at
    # Two readings within a millisecond (a duplicate collection) would divide noise by almost nothing.
    if elapsed_s < 0.001:
        return NO_RATES
    cpu_cores = _per_second(previous.cpu_time_ns, current.cpu_time_ns, elapsed_s)
    if cpu_cores is not None:
        cpu_cores /= NS_PER_S
    cpu_percent = None
    if cpu_cores is not None and current.vcpus > 0:
        # cpu.time also counts QEMU's own emulator threads, which can push it past the vCPUs' total.
        cpu_percent = min(100.0, 100.0 * cpu_cores / current.vcpus)
    return Rates(
        cpu_percent=cpu_percent,
        cpu_cores=cpu_cores,
        disk_read_bps=_per_second(previous.disk_read_bytes, current.disk_read_bytes, elapsed_s),
        disk_write_bps=_per_second(previous.disk_write_bytes, current.disk_write_bytes, elapsed_s),
        net_rx_bps=_per_second(previous.net_rx_bytes, current.net_rx_bytes, elapsed_s),
        net_tx_bps=_per_second(previous.net_tx_bytes, current.net_tx_bytes, elapsed_s),
    )


def total(values: list[float | None]) -> float | None:
    """The sum of the known values; None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
