"""Switching KSM on from the host itself, on a copy of its sysfs files (libvirt cannot switch it on)."""

from __future__ import annotations

from hosts.hypervisor import ksm
from hosts.hypervisor.parsing import guest_memory_mib, ksm_facts


def test_it_switches_ksm_on_once_and_says_so(tmp_path):
    # given a kernel whose KSM is off
    (tmp_path / "run").write_text("0\n")
    # when it is switched on twice, then it runs and the second time says it already did
    assert ksm.switch_on(tmp_path).startswith("KSM switched on")
    assert (tmp_path / "run").read_text() == "1\n"
    assert ksm.switch_on(tmp_path) == "KSM already merges identical memory pages here"


def test_it_says_when_the_kernel_has_no_ksm(tmp_path):
    assert "has no KSM" in ksm.switch_on(tmp_path / "missing")


def test_it_reads_merged_pages_and_guest_memory_from_libvirts_figures():
    # KSM's pages_sharing pages of 4 KiB are what merging saves; full scans alone mean it runs
    assert ksm_facts({"shm_pages_sharing": 2 * 256 * 1024, "shm_full_scans": 3}) == (2048, True)
    assert ksm_facts({"shm_pages_sharing": 0, "shm_full_scans": 0}) == (0, False)
    assert ksm_facts({}) == (None, None)
    # the guest's own view with a balloon, else QEMU's resident size, else nothing
    assert guest_memory_mib({"actual": 4 * 1024 * 1024, "unused": 3 * 1024 * 1024, "rss": 4_000_000}) == 1024
    assert guest_memory_mib({"rss": 512 * 1024}) == 512
    assert guest_memory_mib({"swap_in": 0}) is None
