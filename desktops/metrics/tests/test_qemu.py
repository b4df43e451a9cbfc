"""Collection from a real QEMU guest on libvirtd: CPU time grows, and so do CPU % and memory in use."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from desktops.metrics import collection
from desktops.metrics.models import DesktopSample, HostSample
from desktops.models import Desktop
from desktops.services import execution
from desktops.services.requests import request_create
from desktops.tasks import run_operation

pytestmark = pytest.mark.qemu


def test_it_collects_a_booting_guests_figures(alice, demo_template, qemu_host, monkeypatch):
    # The operation runs here, in-process, rather than through a broker nobody reads in this test
    monkeypatch.setattr(run_operation, "apply_async", lambda *args, **kwargs: SimpleNamespace(id=""))
    desktop, operation = request_create(tenant=alice.tenant, user=alice.member, template=demo_template)
    try:
        # Given the demo desktop launched on libvirtd + QEMU
        execution.run(operation.pk)
        assert Desktop.objects.get(pk=desktop.pk).state == "running"
        # When the host is collected twice, a couple of seconds apart, while the guest boots
        first = collection.collect_host(host_id=qemu_host.pk)
        time.sleep(2)
        second = collection.collect_host(host_id=qemu_host.pk)
        assert first.desktops >= 1 and second.desktops >= 1
        before, after = DesktopSample.objects.filter(desktop=desktop).order_by("at")
        # Then its CPU time grew, and the rate is a real share of its vCPUs
        assert after.cpu_time_ns > before.cpu_time_ns > 0
        assert after.vcpus == demo_template.vcpus
        assert 0 < after.cpu_percent <= 100
        elapsed = (after.at - before.at).total_seconds()
        expected = 100 * (after.cpu_time_ns - before.cpu_time_ns) / 1e9 / elapsed / after.vcpus
        assert after.cpu_percent == pytest.approx(min(100.0, expected), rel=1e-6)
        # And memory figures come from QEMU (the guest's balloon or the process's resident size)
        assert after.memory_used_mib > 0 and after.memory_total_mib == pytest.approx(demo_template.memory_mib)
        # And the host's totals include it
        totals = HostSample.objects.filter(host=qemu_host).latest("at")
        assert totals.cpu_cores >= after.cpu_percent * after.vcpus / 100 - 1e-9
        assert totals.allocated_vcpus >= demo_template.vcpus and totals.vcpu_capacity > 0
    finally:
        execution.remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)
