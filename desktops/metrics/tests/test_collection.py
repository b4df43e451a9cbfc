"""Collection on libvirt's test driver: one call per host, samples per running desktop, pushes per group."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from desktops.metrics import collection, groups
from desktops.metrics.models import DesktopSample, HostSample
from desktops.metrics.tests.helpers import capture, launch
from desktops.metrics.tests.test_rates import record
from desktops.services.requests import request_action
from desktops.tests.conftest import make_test_host
from hosts.hypervisor import NodeStats, get_hypervisor
from hosts.hypervisor.parsing import stats_from_record
from hosts.models import Host


class CallLog:
    """Wraps a hypervisor and writes down every method called on it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        attribute = getattr(self.inner, name)
        if callable(attribute):

            def logged(*args, **kwargs):
                self.calls.append(name)
                return attribute(*args, **kwargs)

            return logged
        return attribute


class RecordedHost:
    """A hypervisor that answers all_domain_stats with real-shaped records for the given desktops."""

    def __init__(self, records: dict) -> None:
        self.records = records

    def all_domain_stats(self):
        return [stats_from_record(d.domain_name, d.pk, r) for d, r in self.records.items()]


@pytest.fixture
def desks(alice, bob, host, template, work):
    return launch(alice, template, work), launch(bob, template, work)


def test_it_reads_every_desktop_of_a_host_in_one_call(
    alice, bob, host, desks, monkeypatch, django_capture_on_commit_callbacks
):
    alice_desk, bob_desk = desks
    spy = CallLog(get_hypervisor(host.uri))
    monkeypatch.setattr(collection, "get_hypervisor", lambda uri: spy)
    t0 = timezone.now()
    # When the host is collected twice, 5 s apart
    with django_capture_on_commit_callbacks(execute=True):
        first = collection.collect_host(host_id=host.pk, now=t0)
        second = collection.collect_host(host_id=host.pk, now=t0 + timedelta(seconds=5))
    # Then each collection asked libvirt for every desktop in one getAllDomainStats, plus the host's own figures
    assert spy.calls == ["all_domain_stats", "node_stats", "all_domain_stats", "node_stats"]
    assert first.desktops == second.desktops == 2
    # And each running desktop has a sample per collection, in its own tenant
    rows = list(DesktopSample.objects.order_by("at", "desktop_id").values_list("desktop_id", "tenant_id", "at"))
    assert rows == [
        (alice_desk.pk, alice.tenant.pk, t0),
        (bob_desk.pk, bob.tenant.pk, t0),
        (alice_desk.pk, alice.tenant.pk, t0 + timedelta(seconds=5)),
        (bob_desk.pk, bob.tenant.pk, t0 + timedelta(seconds=5)),
    ]
    # The test driver reports state only: no vCPU count (so no CPU %), zero counters (so zero rates)
    latest = DesktopSample.objects.filter(at=t0 + timedelta(seconds=5)).first()
    assert latest.cpu_percent is None and latest.disk_read_bps == 0 and latest.net_tx_bps == 0
    assert DesktopSample.objects.filter(at=t0).first().disk_read_bps is None  # no previous reading
    # And the host's totals carry allocation against capacity from the Host row
    host.refresh_from_db()
    totals = HostSample.objects.get(at=t0 + timedelta(seconds=5))
    assert (totals.desktops, totals.cpu_cores, totals.cpu_percent) == (2, 0.0, 0.0)
    assert (totals.allocated_vcpus, totals.vcpu_capacity) == (4, host.vcpu_capacity) == (4, 64)
    assert (totals.allocated_memory_mib, totals.memory_capacity_mib) == (4096, host.memory_capacity_mib)


def test_it_pushes_each_sample_to_its_desktop_its_tenant_and_operators(
    alice, bob, host, desks, django_capture_on_commit_callbacks
):
    alice_desk, bob_desk = desks
    # Given watchers of Alice's desktop, of Alice's tenant and of the operators' topic
    watchers = {
        "desktop": groups.desktop_group(alice_desk.pk),
        "tenant": groups.tenant_group(alice.tenant.pk),
        "operators": groups.operators_group(),
    }

    # When the host is collected
    def collect():
        with django_capture_on_commit_callbacks(execute=True):
            collection.collect_host(host_id=host.pk)

    got = capture(watchers, collect)
    # Then the desktop's watchers get its figures only
    [desk_message] = got["desktop"]
    assert desk_message["type"] == "metrics" and desk_message["topic"] == f"desktop:{alice_desk.pk}"
    assert desk_message["desktop"] == alice_desk.pk and "memory_used_mib" in desk_message
    # And Alice's admins get Alice's desktops, never Bob's
    [tenant_message] = got["tenant"]
    assert tenant_message["topic"] == "tenant"
    assert [d["desktop"] for d in tenant_message["desktops"]] == [alice_desk.pk]
    # And operators get the host's totals, without per-desktop detail
    [host_message] = got["operators"]
    assert host_message["type"] == "host" and host_message["host"] == host.pk and host_message["desktops"] == 2
    assert not any(isinstance(value, list) for value in host_message.values())
    # And every message stays small
    assert max(len(str(m)) for m in (desk_message, tenant_message, host_message)) < 700


def test_it_skips_stopped_desktops_and_domains_nobody_owns(alice, bob, host, desks, work):
    alice_desk, bob_desk = desks
    # Given Alice's desktop stopped, and Bob's desktop row gone while its domain still runs
    with work():
        request_action(desktop=alice_desk, kind="stop", actor=alice.member)
    bob_desk.delete()
    # When the host is collected
    result = collection.collect_host(host_id=host.pk)
    # Then nothing is recorded for either, and the host reports no running desktop
    assert result.desktops == 0 and not DesktopSample.objects.exists()
    assert HostSample.objects.get().desktops == 0


def test_it_computes_rates_from_the_previous_collection(alice, bob, host, desks, django_capture_on_commit_callbacks):
    alice_desk, bob_desk = desks
    t0 = timezone.now()
    # Given real-shaped records of two running guests, 5 s apart
    before = {alice_desk: record(cpu_s=10, rd=0, wr=0, rx=0, tx=0), bob_desk: record(cpu_s=0, rd=0, wr=0, rx=0, tx=0)}
    after = {
        alice_desk: record(cpu_s=15, rd=5_000_000, wr=0, rx=0, tx=0),  # 1 core busy of 2: 50 %
        bob_desk: record(cpu_s=2.5, rd=0, wr=0, rx=500, tx=0),  # 0.5 core: 25 %
    }
    collection.collect_host(host_id=host.pk, now=t0, hypervisor=RecordedHost(before))

    # When the second collection runs
    def collect():
        with django_capture_on_commit_callbacks(execute=True):
            collection.collect_host(host_id=host.pk, now=t0 + timedelta(seconds=5), hypervisor=RecordedHost(after))

    got = capture({"desktop": groups.desktop_group(alice_desk.pk), "operators": groups.operators_group()}, collect)
    # Then each desktop's rates come from its own previous counters
    alice_sample = DesktopSample.objects.get(desktop=alice_desk, at=t0 + timedelta(seconds=5))
    assert alice_sample.cpu_percent == pytest.approx(50.0) and alice_sample.disk_read_bps == pytest.approx(1_000_000)
    assert DesktopSample.objects.get(desktop=bob_desk, at__gt=t0).net_rx_bps == pytest.approx(100)
    # And the host's totals add them up against the host's 16 CPUs
    totals = HostSample.objects.get(at=t0 + timedelta(seconds=5))
    assert totals.cpu_cores == pytest.approx(1.5) and totals.cpu_percent == pytest.approx(100 * 1.5 / 16)
    assert totals.memory_used_mib == pytest.approx(2 * 500_000 / 1024)
    # And the pushed figures are the stored ones
    [desk_message], [host_message] = got["desktop"], got["operators"]
    assert desk_message["cpu_percent"] == 50.0 and desk_message["disk_read_bps"] == 1_000_000
    assert host_message["cpu_cores"] == 1.5


def test_it_does_not_overlap_collections_of_one_host(host, desks):
    from django.core.cache import cache

    # Given a collection of this host still running elsewhere (it holds the host's lock)
    cache.add(collection._lock_key(host.pk), 1, timeout=30)
    try:
        result = collection.collect_host(host_id=host.pk)
    finally:
        cache.delete(collection._lock_key(host.pk))
    # Then this one steps aside without reading or writing anything
    assert result.skipped and not HostSample.objects.exists()


def test_it_fans_out_one_task_per_collectable_host(host, tmp_path, monkeypatch):
    from desktops.metrics import tasks
    from hosts.choices import HostState

    down = make_test_host(tmp_path, state=HostState.DOWN)
    disabled = make_test_host(tmp_path, enabled=False)
    sent = []
    monkeypatch.setattr(tasks.collect_host, "apply_async", lambda args, expires: sent.append((args, expires)))
    assert tasks.collect_all() == 1
    assert sent == [([host.pk], 10.0)]
    assert {down.pk, disabled.pk} & {a[0] for a, _ in sent} == set()
    assert Host.objects.count() == 3


def test_it_keeps_the_samples_when_the_live_push_fails(host, desks, monkeypatch, django_capture_on_commit_callbacks):
    from desktops.metrics import live

    class BrokenLayer:
        async def group_send(self, group, message):
            raise ConnectionError("redis went away")

    monkeypatch.setattr(live, "live_layer", lambda: BrokenLayer())
    # When the channel layer fails during a collection's push
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = collection.collect_host(host_id=host.pk)
    # Then the push gave up quietly and the figures are stored all the same
    assert len(callbacks) == 1 and result.desktops == 2
    assert DesktopSample.objects.count() == 2 and HostSample.objects.count() == 1
    assert live.publish([live.push("g", "t", {})]) == 0


class NodeHost(RecordedHost):
    """A host whose node counters advance by the given busy and total nanoseconds per reading."""

    def __init__(self, readings: list[tuple[int, int]]) -> None:
        super().__init__({})
        self.readings = list(readings)

    def node_stats(self):
        busy, total = self.readings.pop(0)
        return NodeStats(
            cpu_busy_ns=busy,
            cpu_total_ns=total,
            memory_total_mib=16384,
            memory_available_mib=4096,
            disk_total_bytes=500 * 2**30,
            disk_used_bytes=125 * 2**30,
        )


def test_it_records_the_hosts_own_cpu_memory_and_disk(host, monkeypatch):
    # Given a host busy 3 of every 4 CPU-seconds between two readings, with 12 of 16 GiB in use
    node = NodeHost([(1_000, 2_000), (1_000 + 30_000_000_000, 2_000 + 40_000_000_000)])
    monkeypatch.setattr(collection, "get_hypervisor", lambda uri: node)
    t0 = timezone.now()
    # When it is collected twice
    collection.collect_host(host_id=host.pk, now=t0)
    collection.collect_host(host_id=host.pk, now=t0 + timedelta(seconds=5))
    first, second = HostSample.objects.filter(host=host).order_by("at")
    # Then the first has no rate yet, the second 75 %, and both the memory and disk in use
    assert first.node_cpu_percent is None
    assert second.node_cpu_percent == 75.0
    assert second.node_memory_used_mib == 12288
    assert (second.node_disk_used_bytes, second.node_disk_total_bytes) == (125 * 2**30, 500 * 2**30)
    assert collection.host_figures(host, second)["node_cpu_percent"] == 75.0


def test_it_reads_node_figures_from_libvirt(host):
    # The test driver answers the node calls (fixed counters, a default pool), like a real host
    collection.collect_host(host_id=host.pk)
    sample = HostSample.objects.get(host=host)
    assert sample.node_cpu_total_ns and sample.node_disk_total_bytes and sample.node_memory_used_mib is not None
