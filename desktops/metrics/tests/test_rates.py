"""Rates from two getAllDomainStats records: CPU % from cpu.time over wall time and vCPUs, bytes per second."""

from __future__ import annotations

import pytest

from desktops.metrics.rates import NO_RATES, Counters, rates, total
from hosts.hypervisor.parsing import stats_from_record


def record(*, cpu_s: float, rd: int, wr: int, rx: int, tx: int, vcpus: int = 2) -> dict:
    """A QEMU getAllDomainStats record as libvirt returns it (two disks, one NIC, a balloon)."""
    return {
        "state.state": 1,
        "state.reason": 1,
        "cpu.time": int(cpu_s * 1e9),
        "cpu.user": 0,
        "cpu.system": 0,
        "vcpu.current": vcpus,
        "vcpu.maximum": vcpus,
        "balloon.current": 2 * 1024 * 1024,
        "balloon.maximum": 2 * 1024 * 1024,
        "balloon.available": 2_000_000,
        "balloon.unused": 1_500_000,
        "block.count": 2,
        "block.0.name": "vda",
        "block.0.rd.bytes": rd,
        "block.0.wr.bytes": wr,
        "block.1.name": "sda",
        "block.1.rd.bytes": 1000,
        "block.1.wr.bytes": 0,
        "net.count": 1,
        "net.0.name": "vnet0",
        "net.0.rx.bytes": rx,
        "net.0.tx.bytes": tx,
    }


def counters(at: float, **kwargs) -> Counters:
    return Counters.from_stats(stats_from_record("qz-1-abc", 1, record(**kwargs)), at=at)


def test_it_turns_counter_deltas_into_cpu_percent_and_bytes_per_second():
    # Given two readings 5 s apart in which the guest used 2.5 s of CPU on its 2 vCPUs
    before = counters(1000.0, cpu_s=40.0, rd=10_000, wr=20_000, rx=300, tx=400)
    after = counters(1005.0, cpu_s=42.5, rd=5_010_000, wr=20_000 + 2_500_000, rx=300 + 50_000, tx=400 + 5)
    # When the rates are computed
    result = rates(before, after)
    # Then CPU is 0.5 cores busy = 25 % of two vCPUs, and bytes are per second of wall time
    assert result.cpu_cores == pytest.approx(0.5)
    assert result.cpu_percent == pytest.approx(25.0)
    assert result.disk_read_bps == pytest.approx(1_000_000)
    assert result.disk_write_bps == pytest.approx(500_000)
    assert result.net_rx_bps == pytest.approx(10_000)
    assert result.net_tx_bps == pytest.approx(1)


def test_it_reads_memory_and_counters_from_the_record():
    stats = stats_from_record("qz-1-abc", 1, record(cpu_s=1.5, rd=7, wr=8, rx=9, tx=10, vcpus=4))
    # The guest's own view: available - unused; disks and NICs summed over their indexes
    assert stats.memory_used_kib == 500_000 and stats.memory_total_kib == 2 * 1024 * 1024
    assert (stats.cpu_time_ns, stats.vcpus) == (1_500_000_000, 4)
    assert (stats.disk_rd_bytes, stats.disk_wr_bytes, stats.net_rx_bytes, stats.net_tx_bytes) == (1007, 8, 9, 10)


def test_it_has_no_rates_for_a_first_reading():
    assert rates(None, counters(1000.0, cpu_s=1, rd=0, wr=0, rx=0, tx=0)) == NO_RATES


def test_it_reports_no_rate_for_a_counter_that_went_backwards():
    # Given a VM that restarted between two readings (its counters began again from zero)
    before = counters(1000.0, cpu_s=500.0, rd=9_000_000, wr=100, rx=100, tx=100)
    after = counters(1005.0, cpu_s=1.0, rd=1_000, wr=600, rx=100, tx=50)
    result = rates(before, after)
    # Then the counters that restarted have no rate, rather than a huge negative or wrapped one
    assert result.cpu_percent is None and result.cpu_cores is None
    assert result.disk_read_bps is None and result.net_tx_bps is None
    # And the ones that kept growing still do
    assert result.disk_write_bps == pytest.approx(100) and result.net_rx_bps == 0


def test_it_caps_cpu_at_100_percent_when_emulator_threads_add_time():
    before = counters(1000.0, cpu_s=0.0, rd=0, wr=0, rx=0, tx=0, vcpus=1)
    after = counters(1001.0, cpu_s=1.2, rd=0, wr=0, rx=0, tx=0, vcpus=1)
    result = rates(before, after)
    assert result.cpu_percent == 100.0 and result.cpu_cores == pytest.approx(1.2)


def test_it_has_no_cpu_percent_without_vcpus_nor_rates_without_elapsed_time():
    # The test driver reports no vcpu.* keys: cores are known, a share of vCPUs is not
    before = counters(1000.0, cpu_s=0.0, rd=0, wr=0, rx=0, tx=0, vcpus=0)
    after = counters(1002.0, cpu_s=1.0, rd=0, wr=0, rx=0, tx=0, vcpus=0)
    assert rates(before, after).cpu_percent is None and rates(before, after).cpu_cores == pytest.approx(0.5)
    # Two readings at the same instant (a duplicate collection) give nothing rather than a division by ~0
    assert rates(after, counters(1002.0, cpu_s=5.0, rd=0, wr=0, rx=0, tx=0)) == NO_RATES


def test_it_totals_only_known_values():
    assert total([1.0, None, 2.5]) == 3.5
    assert total([None, None]) is None and total([]) is None
